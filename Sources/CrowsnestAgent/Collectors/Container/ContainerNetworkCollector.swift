/// A container's network counters: `/proc/<pid>/net/dev` of its init process (the table of the container's network
/// namespace), summed over every interface but `lo`, the file kept open while the process lives.
///
/// A container in the host's network namespace (`--network host`) reports the host's own figures; callers that
/// know the network mode should clear them for such containers.
public struct ContainerNetworkCollector: Collector {
    private let netDev: KeptFile

    /// A collector for the process `pid` under `procRoot` (`/proc` on a host).
    public init(procRoot: String, pid: Int32) {
        netDev = KeptFile("\(procRoot)/\(pid)/net/dev")
    }

    /// Sets `network`; leaves it zero when the process is gone.
    public func collect(into counters: inout ContainerCounters) throws {
        if let network = try netDev.withContents({ ProcNetDev.sumExceptLoopback(bytes: $0) }) {
            counters.network = network
        }
    }
}
