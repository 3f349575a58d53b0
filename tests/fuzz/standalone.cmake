# Included right after project() by tests/fuzz/run.sh (CMAKE_PROJECT_INCLUDE) while
# tests/CMakeLists.txt does not yet add the fuzz folder itself. Imported targets are only
# visible to directories added after their find_package, hence the two lookups here (the
# root's own lookups later find the targets already defined). agentos_schemas is a normal
# target, resolved at generate time.
find_package(FlatBuffers REQUIRED)
find_package(simdjson REQUIRED)
add_subdirectory(${CMAKE_CURRENT_LIST_DIR} ${CMAKE_BINARY_DIR}/tests/fuzz)
