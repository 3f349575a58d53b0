// A client connection held open by a test, byte by byte: for what well-behaved clients
// never do (stop reading, trickle a header, vanish) and for choosing the source address
// (any of 127.0.0.0/8) and the receive buffer before connecting.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <string>

#include "gateway/http_client.h"

namespace agentos::gateway::test {

struct RawConnOptions {
  std::string local_address;  // empty: the kernel's choice (127.0.0.1 on loopback)
  int receive_buffer = 0;     // SO_RCVBUF before connect; 0: the kernel default
};

class RawConn {
 public:
  RawConn(const cli::Url& url, const std::string& data, const RawConnOptions& o = {}) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    if (o.receive_buffer > 0) ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &o.receive_buffer, sizeof o.receive_buffer);
    if (!o.local_address.empty()) {
      sockaddr_in l{};
      l.sin_family = AF_INET;
      ::inet_pton(AF_INET, o.local_address.c_str(), &l.sin_addr);
      if (::bind(fd_, reinterpret_cast<sockaddr*>(&l), sizeof l) != 0) return;
    }
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(std::stoi(url.port)));
    ::inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
    if (connected_ && !data.empty()) send(data);
  }
  ~RawConn() { close(); }
  RawConn(const RawConn&) = delete;
  RawConn& operator=(const RawConn&) = delete;

  bool connected() const { return connected_; }
  void send(const std::string& data) { (void)!::send(fd_, data.data(), data.size(), MSG_NOSIGNAL); }
  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

  // Reads until `text` has arrived, the server closes, or `timeout` passes; everything
  // read so far is in received().
  bool read_until(const std::string& text, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (received_.find(text) == std::string::npos) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0 || fd_ < 0) return false;
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
      char buf[16384];
      const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) {
        closed_by_peer_ = true;
        return received_.find(text) != std::string::npos;
      }
      received_.append(buf, static_cast<size_t>(n));
    }
    return true;
  }
  // Reads until the server closes the connection (true) or `timeout` passes.
  bool read_to_close(std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    read_until(std::string(1, '\0') + "never", timeout);
    return closed_by_peer_;
  }
  const std::string& received() const { return received_; }

 private:
  int fd_ = -1;
  bool connected_ = false;
  bool closed_by_peer_ = false;
  std::string received_;
};

}  // namespace agentos::gateway::test
