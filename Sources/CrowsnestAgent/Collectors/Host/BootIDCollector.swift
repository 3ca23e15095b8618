import CrowsnestWire
import Synchronization

/// The host's boot id, from `/proc/sys/kernel/random/boot_id`: read once, since it cannot change while the agent
/// runs (a reboot restarts the agent). Empty when missing.
public final class BootIDCollector: Collector {
    private let path: String
    private let bootID = Mutex<String?>(nil)

    /// A collector of `<procRoot>/sys/kernel/random/boot_id`.
    public init(procRoot: String) {
        path = procRoot + "/sys/kernel/random/boot_id"
    }

    public func collect(into sample: inout Crowsnest_V1_HostSample) throws {
        if let known = bootID.withLock({ $0 }) {
            sample.bootID = known
            return
        }
        guard let text = try CollectorFile.string(at: path) else { return }
        let id = Self.parse(text)
        bootID.withLock { $0 = id }
        sample.bootID = id
    }

    /// The boot id without its trailing newline.
    public static func parse(_ text: String) -> String {
        String(text.filter { !$0.isWhitespace })
    }
}
