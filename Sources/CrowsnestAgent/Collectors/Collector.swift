/// One source of figures read every sweep — one `/proc` file, or one container's cgroup files — writing what it
/// read into the sweep's value (`Crowsnest_V1_HostSample` for the host, `ContainerCounters` for a container).
///
/// A collector keeps its files open between sweeps (`KeptFile`) and parses them in place, without building a
/// `String` per line. As in node_exporter, each collector owns its file and nothing else: `HostReader` and
/// `ContainerCollectors` only run a list of them.
public protocol Collector<Figures>: Sendable {
    associatedtype Figures
    /// Reads the collector's files and sets its figures in `figures`; a missing optional file leaves them as they
    /// were (zero).
    /// - Throws: `CollectorError` naming the file when a required file is missing or a file cannot be read.
    func collect(into figures: inout Figures) throws
}
