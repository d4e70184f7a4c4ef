// SPDX-License-Identifier: MIT
// Parameters passed by reference: a POSIX shared-memory segment the caller
// fills and names in the params, which the server's command reads (and for
// inout writes) in place instead of receiving the bytes inside the JSON.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "ipc/error.hpp"
#include "ipc/rpc.hpp"
#include "ipc/shm.hpp"

namespace ipc::rpc {

namespace {

constexpr std::string_view ref_prefix = "/ipc-rpc.ref.";

bool valid_ref_name(std::string_view n) {
    if (!n.starts_with(ref_prefix) || n.size() > 200) return false;
    for (char c : n.substr(1))
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-' && c != '_') return false;
    return true;
}

void write_all(int fd, const char* p, std::size_t n, const std::string& what) {
    while (n > 0) {
        ssize_t w = ::write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) throw last_system_error("write", "", what);
        p += w;
        n -= static_cast<std::size_t>(w);
    }
}

} // namespace

std::optional<shared_ref> ref_of(const json& v) {
    if (!v.is_object() || !v.contains("$shm")) return std::nullopt;
    shared_ref r;
    for (auto it = v.begin(); it != v.end(); ++it) {
        if (it.key() == "$shm" && it->is_string()) r.name = it->get<std::string>();
        else if (it.key() == "size" && it->is_number_unsigned()) r.size = it->get<std::uint64_t>();
        else if (it.key() == "inout" && it->is_boolean()) r.inout = it->get<bool>();
        else if (it.key() != "path") return std::nullopt;
    }
    if (!valid_ref_name(r.name) || !v.contains("size")) return std::nullopt;
    return r;
}

json callback_param(const std::string& name) { return json{{"$callback", name}}; }

std::optional<std::string> callback_of(const json& v) {
    if (!v.is_object() || v.size() != 1 || !v.contains("$callback") || !v["$callback"].is_string()) return std::nullopt;
    return v["$callback"].get<std::string>();
}

json ref_json(const shared_ref& r) { return json{{"$shm", r.name}, {"size", r.size}, {"inout", r.inout}}; }

outgoing_ref::outgoing_ref(outgoing_ref&& o) noexcept : ref_(std::move(o.ref_)), fd_(std::move(o.fd_)) { o.ref_.name.clear(); }

outgoing_ref::~outgoing_ref() {
    if (!ref_.name.empty()) ::shm_unlink(ref_.name.c_str());
}

namespace {

std::string fresh_name() {
    static std::atomic<unsigned> n{0};
    unsigned char rnd[4] = {};
    int fd = ::open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        [[maybe_unused]] auto r = ::read(fd, rnd, sizeof rnd);
        ::close(fd);
    }
    return fmt::format("{}{}.{}.{:02x}{:02x}{:02x}{:02x}", ref_prefix, ::getpid(), ++n, rnd[0], rnd[1], rnd[2], rnd[3]);
}

} // namespace

outgoing_ref outgoing_ref::from_bytes(std::string_view bytes, bool inout) {
    outgoing_ref r;
    r.ref_.name = fresh_name();
    r.ref_.inout = inout;
    r.fd_.reset(::shm_open(r.ref_.name.c_str(), O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600));
    if (!r.fd_) {
        r.ref_.name.clear();
        throw last_system_error("create", "shared memory", "by-reference param");
    }
    shm::tag_fd(r.fd_.get(), shm::kind::segment, "ipc-rpc");
    write_all(r.fd_.get(), bytes.data(), bytes.size(), r.ref_.name);
    r.ref_.size = bytes.size();
    return r;
}

outgoing_ref outgoing_ref::from_file(const std::string& path, bool inout) {
    unique_fd in(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!in) throw last_system_error("open", "", path);
    struct stat st{};
    if (::fstat(in.get(), &st) != 0) throw last_system_error("stat", "", path);
    if (!S_ISREG(st.st_mode)) throw data_error(fmt::format("'{}' is not a regular file: only files can be passed by reference", path));
    auto r = from_bytes({}, inout);
    // The kernel copies the file into the segment (no trip through this process).
    off_t off = 0;
    while (off < st.st_size) {
        ssize_t n = ::sendfile(r.fd_.get(), in.get(), &off, static_cast<std::size_t>(st.st_size - off));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) throw last_system_error("copy", "", path);
        if (n == 0) break;  // the file shrank meanwhile
    }
    r.ref_.size = static_cast<std::uint64_t>(off);
    return r;
}

std::string outgoing_ref::contents() const { return read_ref(fd_.get()); }

void outgoing_ref::write_back(const std::string& path) const {
    std::string data = contents();
    std::string tmp = path + ".ipc-rpc.tmp";
    unique_fd out(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (!out) throw last_system_error("create", "", tmp);
    struct stat st{};
    if (::stat(path.c_str(), &st) == 0) ::fchmod(out.get(), st.st_mode & 07777);
    try {
        write_all(out.get(), data.data(), data.size(), tmp);
        if (::fsync(out.get()) != 0) throw last_system_error("sync", "", tmp);
    } catch (...) {
        ::unlink(tmp.c_str());
        throw;
    }
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
        int e = errno;
        ::unlink(tmp.c_str());
        throw system_error(e, "rename", "", tmp);
    }
}

unique_fd open_ref(const shared_ref& r, uid_t peer_uid) {
    unique_fd fd(::shm_open(r.name.c_str(), (r.inout ? O_RDWR : O_RDONLY) | O_NOFOLLOW | O_CLOEXEC, 0));
    if (!fd) throw last_system_error("open", "by-reference param", r.name);
    struct stat st{};
    if (::fstat(fd.get(), &st) != 0) throw last_system_error("stat", "by-reference param", r.name);
    if (st.st_uid != peer_uid)
        throw error(exit_code::no_perm, fmt::format("by-reference param '{}' belongs to uid {}, not to the caller (uid {})", r.name, st.st_uid, peer_uid));
    if (!S_ISREG(st.st_mode) || static_cast<std::uint64_t>(st.st_size) != r.size)
        throw data_error(fmt::format("by-reference param '{}' holds {} bytes, not the {} its reference says", r.name, st.st_size, r.size));
    return fd;
}

std::string read_ref(int fd) {
    struct stat st{};
    if (::fstat(fd, &st) != 0) throw last_system_error("stat", "", "by-reference param");
    std::string out(static_cast<std::size_t>(st.st_size), '\0');
    std::size_t done = 0;
    while (done < out.size()) {
        ssize_t n = ::pread(fd, out.data() + done, out.size() - done, static_cast<off_t>(done));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) throw last_system_error("read", "", "by-reference param");
        if (n == 0) break;
        done += static_cast<std::size_t>(n);
    }
    out.resize(done);
    return out;
}

} // namespace ipc::rpc
