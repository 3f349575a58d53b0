// The engine's projections, registered once: a new domain's read model is one line here.
#include "projections/projection.h"

namespace agentos::proj {

std::vector<std::unique_ptr<Projection>> make_projections(const ProjectionOptions& opts) {
  std::vector<std::unique_ptr<Projection>> all;
  all.push_back(make_audit_index_projection());
  all.push_back(make_tenancy_projection());
  all.push_back(make_sessions_projection(opts.prices, opts.schema));
  all.push_back(make_heartbeat_projection());
  all.push_back(make_dreams_projection());
  all.push_back(make_skills_projection());
  all.push_back(make_router_projection(opts.schema));
  return all;
}

}  // namespace agentos::proj
