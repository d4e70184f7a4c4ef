// SPDX-License-Identifier: MIT
#include "ipc/framing.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include "ipc/error.hpp"
#include "ipc/parse.hpp"

namespace ipc::framing {

namespace {

constexpr std::size_t chunk = 64 * 1024;

char delimiter_of(mode m) { return m == mode::nul ? '\0' : '\n'; }

std::uint32_t load_be32(const char* p) {
    auto b = [&](int i) { return static_cast<std::uint32_t>(static_cast<unsigned char>(p[i])); };
    return b(0) << 24 | b(1) << 16 | b(2) << 8 | b(3);
}

} // namespace

void encode(mode m, std::string_view payload, std::string& out) {
    switch (m) {
    case mode::line:
    case mode::nul: {
        char d = delimiter_of(m);
        if (payload.find(d) != std::string_view::npos)
            throw data_error(fmt::format("message contains the {} that ends messages; use {}",
                                         m == mode::nul ? "NUL byte" : "newline",
                                         m == mode::nul ? "--framed" : "-0 or --framed"));
        out.append(payload);
        out += d;
        return;
    }
    case mode::framed: {
        if (payload.size() > max_frame_payload)
            throw data_error(fmt::format("message of {} bytes is larger than a frame can carry",
                                         payload.size()));
        auto n = static_cast<std::uint32_t>(payload.size());
        char header[4] = {static_cast<char>(n >> 24), static_cast<char>(n >> 16),
                          static_cast<char>(n >> 8), static_cast<char>(n)};
        out.append(header, 4);
        out.append(payload);
        return;
    }
    case mode::whole:
        out.append(payload);
        return;
    }
}

reader::reader(int fd, mode m, std::size_t max_message) : fd_(-1), mode_(m), max_(max_message) {
    restart(fd);
}

reader::~reader() {
    // Hand back what was read ahead of a regular file, so the file offset sits
    // right after the last message taken.
    if (source_ == source::file && partial_bytes() > 0)
        ::lseek(fd_, -static_cast<off_t>(partial_bytes()), SEEK_CUR);
}

void reader::restart(int fd) {
    fd_ = fd;
    whole_done_ = false;
    buf_.clear();
    start_ = scan_ = 0;
    struct stat st {};
    source_ = source::other;
    if (::fstat(fd, &st) == 0) {
        if (S_ISFIFO(st.st_mode)) source_ = source::pipe;
        else if (S_ISSOCK(st.st_mode)) source_ = source::socket;
        else if (S_ISREG(st.st_mode)) source_ = source::file;
    }
    int flags = ::fcntl(fd, F_GETFL);
    nonblocking_ = flags >= 0 && (flags & O_NONBLOCK);
}

void reader::compact() {
    if (start_ == 0) return;
    if (start_ == buf_.size()) {
        buf_.clear();
        scan_ = 0;
    } else if (start_ > chunk) {
        buf_.erase(0, start_);
        scan_ -= start_;
    } else {
        return;
    }
    start_ = 0;
}

bool reader::take_complete(result& out) {
    std::string_view held(buf_.data() + start_, buf_.size() - start_);
    switch (mode_) {
    case mode::line:
    case mode::nul: {
        char d = delimiter_of(mode_);
        auto pos = buf_.find(d, std::max(scan_, start_));
        if (pos == std::string::npos) {
            scan_ = buf_.size();
            if (held.size() > max_)
                throw data_error(fmt::format("message longer than the maximum message size ({})",
                                             parse::human_size(max_)));
            return false;
        }
        if (pos - start_ > max_) {
            // Skip it, so that the stream stays usable for whoever handles the error.
            std::size_t size = pos - start_;
            start_ = pos + 1;
            scan_ = start_;
            compact();
            throw data_error(fmt::format("message of {} bytes is over the maximum message size ({})", size,
                                         parse::human_size(max_)));
        }
        out.st = status::message;
        out.data.assign(buf_, start_, pos - start_);
        start_ = pos + 1;
        scan_ = start_;
        compact();
        return true;
    }
    case mode::framed: {
        if (held.size() < 4) return false;
        std::uint32_t len = load_be32(held.data());
        if (len > max_)
            throw data_error(fmt::format("frame header announces {} bytes, over the maximum message size ({})",
                                         len, parse::human_size(max_)));
        if (held.size() - 4 < len) return false;
        out.st = status::message;
        out.data.assign(held.substr(4, len));
        start_ += 4 + static_cast<std::size_t>(len);
        compact();
        return true;
    }
    case mode::whole:
        if (held.size() > max_)
            throw data_error(fmt::format("message longer than the maximum message size ({})",
                                         parse::human_size(max_)));
        return false;
    }
    return false;
}

std::size_t reader::count_ready(std::string_view data, std::size_t wanted) const {
    // Bytes of `data` that belong to the next `wanted` messages: up to and
    // including the wanted-th delimiter, or all of it if fewer are there.
    char d = delimiter_of(mode_);
    std::size_t pos = 0;
    for (std::size_t k = 0; k < wanted; ++k) {
        auto hit = data.find(d, pos);
        if (hit == std::string_view::npos) return data.size();
        pos = hit + 1;
    }
    return pos;
}

std::size_t reader::safe_read_size(std::size_t wanted) {
    if (wanted == all || mode_ == mode::whole || source_ == source::file) return chunk;
    if (mode_ == mode::framed) {
        std::size_t held = partial_bytes();
        if (held < 4) return 4 - held;
        std::uint32_t len = load_be32(buf_.data() + start_);
        return std::min<std::size_t>(4 + len - held, chunk);
    }
    return 0;  // delimited: peek first
}

std::optional<reader::fill_status> reader::confirm_end(const deadline& until) {
    // A FIFO that no writer has opened yet also reads as empty-and-ended;
    // poll tells the two apart: it waits for the first writer, and reports
    // POLLHUP only once a writer has come and gone.
    short ev = wait_fd(fd_, POLLIN, until);
    if (ev == 0) return fill_status::timeout;
    if (ev & POLLIN) return std::nullopt;
    return fill_status::eof;
}

reader::fill_status reader::fill(const deadline& until, std::size_t wanted) {
    for (;;) {
        // Blocking descriptors are polled first so that the deadline holds.
        if (!nonblocking_ && !until.infinite()) {
            short ev = wait_fd(fd_, POLLIN, until);
            if (ev == 0) return fill_status::timeout;
        }
        std::size_t n = safe_read_size(wanted);
        if (n == 0 && source_ == source::pipe && peek_ok_) {
            // tee(2) copies what the pipe holds without taking it.
            if (!peek_r_) {
                int p[2];
                if (::pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0) throw last_system_error("create", "pipe", "");
                peek_r_.reset(p[0]);
                peek_w_.reset(p[1]);
            }
            ssize_t t = retry([&] { return ::tee(fd_, peek_w_.get(), chunk, SPLICE_F_NONBLOCK); });
            if (t < 0 && errno == EINVAL) {
                peek_ok_ = false;
                continue;
            }
            if (t < 0 && errno == EAGAIN) {
                if (wait_fd(fd_, POLLIN, until) == 0) return fill_status::timeout;
                // POLLHUP with nothing left: tee reports the end next time.
                continue;
            }
            if (t < 0) throw last_system_error("read from", "", "pipe");
            if (t == 0) {
                if (auto st = confirm_end(until)) return *st;
                continue;
            }
            std::string peeked(static_cast<std::size_t>(t), '\0');
            std::size_t got = 0;
            while (got < peeked.size()) {
                ssize_t r = retry([&] { return ::read(peek_r_.get(), peeked.data() + got, peeked.size() - got); });
                if (r <= 0) throw last_system_error("read from", "", "peek pipe");
                got += static_cast<std::size_t>(r);
            }
            n = count_ready(peeked, wanted);
        } else if (n == 0 && source_ == source::socket) {
            std::string peeked(chunk, '\0');
            ssize_t t = retry([&] { return ::recv(fd_, peeked.data(), peeked.size(), MSG_PEEK | MSG_DONTWAIT); });
            if (t < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                if (wait_fd(fd_, POLLIN, until) == 0) return fill_status::timeout;
                continue;
            }
            if (t < 0) throw last_system_error("read from", "", "socket");
            if (t == 0) return fill_status::eof;
            n = count_ready(std::string_view(peeked.data(), static_cast<std::size_t>(t)), wanted);
        } else if (n == 0) {
            n = ::isatty(fd_) ? chunk : 1;  // a terminal hands over one line per read
        }

        std::size_t old = buf_.size();
        buf_.resize(old + n);
        ssize_t r = retry([&] { return ::read(fd_, buf_.data() + old, n); });
        if (r < 0) {
            int err = errno;
            buf_.resize(old);
            if (err == EAGAIN) {
                if (wait_fd(fd_, POLLIN, until) == 0) return fill_status::timeout;
                continue;
            }
            throw system_error(err, "read", "", "input");
        }
        buf_.resize(old + static_cast<std::size_t>(r));
        if (r == 0 && source_ == source::pipe) {
            if (auto st = confirm_end(until)) return *st;
            continue;
        }
        return r == 0 ? fill_status::eof : fill_status::more;
    }
}

result reader::next(const deadline& until, std::size_t wanted) {
    result out;
    if (wanted == 0) wanted = 1;
    for (;;) {
        if (take_complete(out)) return out;
        switch (fill(until, wanted)) {
        case fill_status::more:
            continue;
        case fill_status::timeout:
            out.st = status::timeout;
            return out;
        case fill_status::eof:
            if (mode_ == mode::whole && !whole_done_) {
                whole_done_ = true;
                out.st = status::message;
                out.data.assign(buf_, start_);
                buf_.clear();
                start_ = scan_ = 0;
                return out;
            }
            if (partial_bytes() > 0 && unterminated_ok_ && mode_ != mode::framed) {
                out.st = status::message;
                out.data.assign(buf_, start_);
                buf_.clear();
                start_ = scan_ = 0;
                return out;
            }
            if (partial_bytes() > 0) {
                std::size_t torn = partial_bytes();
                buf_.clear();
                start_ = scan_ = 0;
                throw data_error(fmt::format("stream ended inside a message: {} byte{} of an incomplete {} discarded",
                                             torn, torn == 1 ? "" : "s",
                                             mode_ == mode::framed ? "frame" : "message"));
            }
            out.st = status::eof;
            return out;
        }
    }
}

} // namespace ipc::framing
