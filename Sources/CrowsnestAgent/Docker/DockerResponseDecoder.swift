#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Turns Docker Engine API JSON bodies into Crowsnest's Docker models.
///
/// Lenient by design: missing or null fields read as empty/zero, so answers from Docker 20.10
/// through current releases, on cgroup v1 and v2, decode alike. Throws `DecodingError` only
/// when the body is not JSON of the expected shape.
public enum DockerResponseDecoder {
    /// Decodes a `GET /containers/json` body.
    public static func containerList(from data: Data) throws -> [DockerContainerSummary] {
        let rows = try JSONDecoder().decode([WireSummary].self, from: data)
        return rows.map { row in
            DockerContainerSummary(
                id: row.Id ?? "",
                names: (row.Names ?? []).map(stripLeadingSlash),
                image: row.Image ?? "",
                state: row.State ?? "",
                status: row.Status ?? "",
                labels: row.Labels ?? [:]
            )
        }
    }

    /// Decodes a `GET /containers/{id}/json` body.
    public static func containerDetails(from data: Data) throws -> DockerContainerDetails {
        let wire = try JSONDecoder().decode(WireInspect.self, from: data)
        let state = wire.State
        var health: DockerHealth?
        if let wireHealth = state?.Health, let status = wireHealth.Status, !status.isEmpty, status != "none" {
            let last = wireHealth.Log?.last
            health = DockerHealth(
                status: status,
                failingStreak: wireHealth.FailingStreak ?? 0,
                lastOutput: last?.Output,
                lastExitCode: last?.ExitCode
            )
        }
        let hostConfig = wire.HostConfig
        return DockerContainerDetails(
            id: wire.Id ?? "",
            name: stripLeadingSlash(wire.Name ?? ""),
            image: wire.Config?.Image ?? "",
            labels: wire.Config?.Labels ?? [:],
            state: state?.Status ?? "",
            pid: state?.Pid ?? 0,
            exitCode: Int32(clamping: state?.ExitCode ?? 0),
            oomKilled: state?.OOMKilled ?? false,
            startedAtUnixNano: state?.StartedAt.flatMap(DockerTimestamp.unixNanoseconds(fromRFC3339:)),
            finishedAtUnixNano: state?.FinishedAt.flatMap(DockerTimestamp.unixNanoseconds(fromRFC3339:)),
            health: health,
            restartCount: wire.RestartCount ?? 0,
            cpuLimitCores: cpuLimitCores(
                nanoCPUs: hostConfig?.NanoCpus ?? 0,
                quota: hostConfig?.CpuQuota ?? 0,
                period: hostConfig?.CpuPeriod ?? 0
            ),
            memoryLimitBytes: UInt64(clamping: max(hostConfig?.Memory ?? 0, 0))
        )
    }

    /// Decodes a `GET /containers/{id}/stats?stream=false` body into the agent's counter model; nil when Docker had
    /// no figures (a container that is not running: zero read time and empty sections).
    ///
    /// Docker's memory limit is left out (0): when the container has none, Docker reports the host's memory there,
    /// which would look like a limit. The sampler takes the limit from inspect data instead.
    public static func stats(from data: Data) throws -> ContainerCounters? {
        let wire = try JSONDecoder().decode(WireStats.self, from: data)
        guard let readUnixNano = wire.read.flatMap(DockerTimestamp.unixNanoseconds(fromRFC3339:)) else { return nil }
        var counters = ContainerCounters(source: .dockerStats)
        counters.readUnixNano = readUnixNano
        counters.cpuUsageNs = wire.cpu_stats?.cpu_usage?.total_usage ?? 0
        counters.cpuThrottledPeriods = wire.cpu_stats?.throttling_data?.throttled_periods ?? 0
        counters.cpuThrottledNs = wire.cpu_stats?.throttling_data?.throttled_time ?? 0
        let memory = wire.memory_stats
        counters.memoryUsageBytes = memory?.usage ?? 0
        // cgroup v1 reports the hierarchical total_inactive_file; v2 only inactive_file.
        counters.memoryInactiveFileBytes = memory?.stats?["total_inactive_file"] ?? memory?.stats?["inactive_file"] ?? 0
        for network in (wire.networks ?? [:]).values {
            counters.network.add(NetworkCounters(
                rxBytes: network.rx_bytes ?? 0, txBytes: network.tx_bytes ?? 0,
                rxPackets: network.rx_packets ?? 0, txPackets: network.tx_packets ?? 0,
                rxErrors: network.rx_errors ?? 0, txErrors: network.tx_errors ?? 0,
                rxDropped: network.rx_dropped ?? 0, txDropped: network.tx_dropped ?? 0))
        }
        let bytes = sumBlockIO(wire.blkio_stats?.io_service_bytes_recursive)
        counters.blockReadBytes = bytes.read
        counters.blockWriteBytes = bytes.write
        let ops = sumBlockIO(wire.blkio_stats?.io_serviced_recursive)
        counters.blockReadOps = ops.read
        counters.blockWriteOps = ops.write
        counters.pids = wire.pids_stats?.current ?? 0
        return counters
    }

    /// Decodes one line of the `GET /events` stream.
    public static func event(fromLine data: Data) throws -> DockerEvent {
        let wire = try JSONDecoder().decode(WireEvent.self, from: data)
        let rawAction = wire.Action ?? wire.status ?? ""
        var action = rawAction
        var actionDetail: String?
        if let colon = rawAction.firstIndex(of: ":") {
            action = String(rawAction[..<colon])
            let rest = rawAction[rawAction.index(after: colon)...]
            actionDetail = String(rest.drop(while: { $0 == " " }))
        }
        let attributes = wire.Actor?.Attributes ?? [:]
        let timeUnixNano = wire.timeNano ?? (wire.time.map { $0 &* 1_000_000_000 } ?? 0)
        return DockerEvent(
            rawAction: rawAction,
            action: action,
            id: wire.Actor?.ID ?? wire.id ?? "",
            name: attributes["name"] ?? "",
            exitCode: attributes["exitCode"].flatMap { Int32($0) },
            signal: attributes["signal"],
            healthStatus: action == "health_status" ? actionDetail : nil,
            timeUnixNano: timeUnixNano,
            attributes: attributes
        )
    }

    /// What can be known of an event whose line was too long to keep (megabytes of labels): its id, action and
    /// time, read from the line's head and tail; nil when they are not there. Attributes (name, labels, exit
    /// code) are lost — whoever needs them inspects the container.
    public static func event(fromOverlong line: DockerEventLineSplitter.OverlongLine) -> DockerEvent? {
        let head = line.head, tail = line.tail
        guard let id = stringField("id", in: head) ?? stringField("ID", in: head),
              let rawAction = stringField("Action", in: head) ?? stringField("status", in: head),
              stringField("Type", in: head).map({ $0 == "container" }) ?? true
        else { return nil }
        let timeNano = integerField("timeNano", in: tail) ?? integerField("time", in: tail).map { $0 &* 1_000_000_000 } ?? 0
        let action = rawAction.split(separator: ":", maxSplits: 1).first.map(String.init) ?? rawAction
        let detail = rawAction.split(separator: ":", maxSplits: 1).dropFirst().first.map { String($0.drop(while: { $0 == " " })) }
        return DockerEvent(rawAction: rawAction, action: action, id: id, name: "", exitCode: nil, signal: nil,
                           healthStatus: action == "health_status" ? detail : nil, timeUnixNano: timeNano, attributes: [:])
    }

    /// The id of the first container in the head of a `GET /containers/json` answer (`[{"Id":"…",…`): what can be
    /// known of a listing entry too large to read whole. Nil unless it is a 64-digit hex id.
    public static func containerID(atHeadOfListing head: [UInt8]) -> String? {
        guard let id = stringField("Id", in: head), id.utf8.count == 64,
              id.utf8.allSatisfy({ ($0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9")) || ($0 >= UInt8(ascii: "a") && $0 <= UInt8(ascii: "f")) })
        else { return nil }
        return id
    }

    /// The first `"key":"value"` string of a JSON fragment (values Docker writes here have no escapes).
    private static func stringField(_ key: String, in bytes: [UInt8]) -> String? {
        guard let start = firstEnd(of: Array("\"\(key)\":\"".utf8), in: bytes),
              let end = bytes[start...].firstIndex(of: UInt8(ascii: "\"")) else { return nil }
        return String(decoding: bytes[start..<end], as: UTF8.self)
    }

    /// The last `"key":123` integer of a JSON fragment.
    private static func integerField(_ key: String, in bytes: [UInt8]) -> Int64? {
        let needle = Array("\"\(key)\":".utf8)
        var found: Int?
        var from = 0
        while let end = firstEnd(of: needle, in: bytes, from: from) {
            found = end
            from = end
        }
        guard let start = found else { return nil }
        return Int64(String(decoding: bytes[start...].prefix { (0x30...0x39).contains($0) }, as: UTF8.self))
    }

    /// The index just past the first occurrence of `needle` in `bytes` at or after `from`.
    private static func firstEnd(of needle: [UInt8], in bytes: [UInt8], from: Int = 0) -> Int? {
        guard !needle.isEmpty, bytes.count >= needle.count, from <= bytes.count - needle.count else { return nil }
        for index in from...(bytes.count - needle.count) where bytes[index] == needle[0] {
            if bytes[index..<(index + needle.count)].elementsEqual(needle) { return index + needle.count }
        }
        return nil
    }

    /// Decodes a `GET /version` body into the engine's version ("20.10.24+dfsg1").
    public static func serverVersion(from data: Data) throws -> String {
        try JSONDecoder().decode(WireVersion.self, from: data).Version ?? ""
    }

    /// Decodes the `{"message": "..."}` body Docker sends with error statuses; nil when absent.
    public static func errorMessage(from data: Data) -> String? {
        (try? JSONDecoder().decode(WireErrorMessage.self, from: data))?.message
    }

    /// CPU limit in cores: NanoCpus wins (`--cpus`), else CpuQuota / CpuPeriod (period defaults to 100 ms).
    static func cpuLimitCores(nanoCPUs: Int64, quota: Int64, period: Int64) -> Double {
        if nanoCPUs > 0 { return Double(nanoCPUs) / 1e9 }
        if quota > 0 { return Double(quota) / Double(period > 0 ? period : 100_000) }
        return 0
    }

    private static func stripLeadingSlash(_ name: String) -> String {
        name.hasPrefix("/") ? String(name.dropFirst()) : name
    }

    private static func sumBlockIO(_ entries: [WireBlkioEntry]?) -> (read: UInt64, write: UInt64) {
        var read: UInt64 = 0
        var write: UInt64 = 0
        for entry in entries ?? [] {
            switch entry.op?.lowercased() {
            case "read": read &+= entry.value ?? 0
            case "write": write &+= entry.value ?? 0
            default: break
            }
        }
        return (read, write)
    }
}

// MARK: - Wire shapes (field names as Docker spells them)

private struct WireSummary: Decodable {
    var Id: String?
    var Names: [String]?
    var Image: String?
    var State: String?
    var Status: String?
    var Labels: [String: String]?
}

private struct WireInspect: Decodable {
    struct State: Decodable {
        var Status: String?
        var Pid: Int?
        var ExitCode: Int?
        var OOMKilled: Bool?
        var StartedAt: String?
        var FinishedAt: String?
        var Health: Health?
    }
    struct Health: Decodable {
        var Status: String?
        var FailingStreak: Int?
        var Log: [HealthLogEntry]?
    }
    struct HealthLogEntry: Decodable {
        var ExitCode: Int?
        var Output: String?
    }
    struct Config: Decodable {
        var Image: String?
        var Labels: [String: String]?
    }
    struct HostConfig: Decodable {
        var NanoCpus: Int64?
        var CpuQuota: Int64?
        var CpuPeriod: Int64?
        var Memory: Int64?
    }
    var Id: String?
    var Name: String?
    var RestartCount: Int?
    var State: State?
    var Config: Config?
    var HostConfig: HostConfig?
}

private struct WireBlkioEntry: Decodable {
    var op: String?
    var value: UInt64?
}

private struct WireStats: Decodable {
    struct CPUStats: Decodable {
        struct Usage: Decodable { var total_usage: UInt64? }
        struct Throttling: Decodable {
            var throttled_periods: UInt64?
            var throttled_time: UInt64?
        }
        var cpu_usage: Usage?
        var throttling_data: Throttling?
    }
    struct MemoryStats: Decodable {
        var usage: UInt64?
        var stats: [String: UInt64]?
    }
    struct Network: Decodable {
        var rx_bytes: UInt64?
        var rx_packets: UInt64?
        var rx_errors: UInt64?
        var rx_dropped: UInt64?
        var tx_bytes: UInt64?
        var tx_packets: UInt64?
        var tx_errors: UInt64?
        var tx_dropped: UInt64?
    }
    struct Blkio: Decodable {
        var io_service_bytes_recursive: [WireBlkioEntry]?
        var io_serviced_recursive: [WireBlkioEntry]?
    }
    struct Pids: Decodable { var current: UInt64? }
    var read: String?
    var cpu_stats: CPUStats?
    var memory_stats: MemoryStats?
    var networks: [String: Network]?
    var blkio_stats: Blkio?
    var pids_stats: Pids?
}

private struct WireEvent: Decodable {
    struct Actor: Decodable {
        var ID: String?
        var Attributes: [String: String]?
    }
    var status: String?
    var id: String?
    var `Type`: String?
    var Action: String?
    var Actor: Actor?
    var time: Int64?
    var timeNano: Int64?
}

private struct WireVersion: Decodable {
    var Version: String?
}

private struct WireErrorMessage: Decodable {
    var message: String?
}
