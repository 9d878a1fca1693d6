import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// One orchestrator per database: an exclusive `flock` on `<database>.lock`, held for the
/// process's life (the kernel drops it when the process dies, even by SIGKILL, so a crash leaves
/// nothing to clean up). The file names the holder, so a second `warren serve` can say who it is.
final class DatabaseLock: Sendable {
    private let fd: Int32
    let path: String

    /// Takes the lock, or throws saying which process holds it.
    init(databasePath: String) throws {
        path = databasePath + ".lock"
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw OrchestratorError("cannot open the lock file '\(path)': \(String(cString: strerror(errno)))")
        }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let holder = (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
            close(fd)
            throw OrchestratorError("the database '\(databasePath)' is in use by another orchestrator"
                + (holder.isEmpty ? "" : " (\(holder))") + "; stop it first, or give this one another --db")
        }
        var host = [CChar](repeating: 0, count: 256)
        gethostname(&host, host.count)
        let holder = "pid \(getpid()) on \(String(cString: host)), since \(ISO8601DateFormatter().string(from: Date()))\n"
        ftruncate(fd, 0)
        _ = holder.withCString { pwrite(fd, $0, strlen($0), 0) }
        self.fd = fd
    }

    deinit { close(fd) }  // releases the lock
}
