import Logging
import Metrics
import PostgresNIO
import ServiceLifecycle

/// How much of this replica's database pools is in use, for `/metrics`: every 15 s, the connections of each pool
/// by state as PostgreSQL sees them (`pg_stat_activity`, told apart by the pool's tagged application name), beside
/// the pool's limit. postgres-nio exposes no pool figures of its own; this is what the database knows.
public struct DatabasePoolMonitor: Service {
    /// The states reported; anything else (`fastpath function call`, `disabled`) counts as `other`.
    public static let states = ["active", "idle", "idle in transaction", "idle in transaction (aborted)", "other"]

    let client: PostgresClient
    let pools: [String: ServerDatabase.PoolSettings]
    let interval: Duration
    let logger: Logger

    public init(client: PostgresClient, pools: [String: ServerDatabase.PoolSettings], interval: Duration = .seconds(15),
                logger: Logger) {
        self.client = client
        self.pools = pools
        self.interval = interval
        self.logger = logger
        for (pool, settings) in pools {
            Gauge(label: "crowsnest_database_pool_connections_max", dimensions: [("pool", pool)])
                .record(settings.maximumConnections)
        }
    }

    public func run() async throws {
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            do {
                let counts = try await Self.connections(client: client, applicationNames: pools.mapValues(\.name), logger: logger)
                for pool in pools.keys {
                    for state in Self.states {
                        Gauge(label: "crowsnest_database_pool_connections", dimensions: [("pool", pool), ("state", state)])
                            .record(counts[pool]?[state] ?? 0)
                    }
                }
            } catch {
                logger.debug("cannot read the database pools' connections", metadata: ["error": "\(error)"])
            }
            do { try await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) } } catch { return }
        }
    }

    /// Connections by pool and state: `applicationNames` maps each pool to the application name its connections use.
    public static func connections(client: PostgresClient, applicationNames: [String: String],
                                   logger: Logger) async throws -> [String: [String: Int]] {
        let names = Array(applicationNames.values)
        let rows = try await client.query("""
            SELECT application_name, coalesce(state, 'other'), count(*)::int FROM pg_stat_activity
            WHERE application_name = ANY(\(names)) GROUP BY 1, 2
            """, logger: logger)
        let poolByName = Dictionary(applicationNames.map { ($1, $0) }, uniquingKeysWith: { first, _ in first })
        var counts: [String: [String: Int]] = [:]
        for try await (name, state, count) in rows.decode((String, String, Int).self) {
            guard let pool = poolByName[name] else { continue }
            let known = states.contains(state) ? state : "other"
            counts[pool, default: [:]][known, default: 0] += count
        }
        return counts
    }
}
