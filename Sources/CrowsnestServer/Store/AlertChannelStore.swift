import CrowsnestWire
import Foundation
import Logging
import PostgresNIO

/// An alert channel as stored: what may be shown of it. Its URL and secret stay sealed until a delivery.
public struct StoredAlertChannel: Sendable, Equatable {
    public var id: UUID
    public var name: String
    public var type: String
    public var destination: String
    public var createdAt: Date
}

/// SQL for `alert_channels`. Each channel's URL and signing secret are sealed with the server's secret key
/// before they reach the database and opened only to deliver.
public struct AlertChannelStore: Sendable {
    public static let maximumPerTenant = 100

    public let client: PostgresClient
    public let logger: Logger

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    /// Stores a new channel. Throws `StoreError(.alreadyExists)` for a taken name, `.invalid` at the limit.
    public func create(tenantID: UUID, definition: AlertChannelDefinition, secretKey: SecretKey) async throws -> StoredAlertChannel {
        let sealed = try secretKey.seal(Array(definition.settings.json.jsonText.utf8))
        do {
            let rows = try await client.query("""
                INSERT INTO alert_channels (tenant_id, id, name, type, destination, sealed, repost_seconds)
                SELECT \(tenantID), \(UUID()), \(definition.name), \(definition.kind.rawValue), \(definition.destination),
                       \(ByteBuffer(bytes: sealed)), \(definition.settings.repostSeconds)
                WHERE (SELECT count(*) FROM alert_channels WHERE tenant_id = \(tenantID)) < \(Self.maximumPerTenant)
                RETURNING id, name, type, destination, created_at
                """, logger: logger)
            guard let channel = try await Self.decode(rows).first else {
                throw StoreError(.invalid, "the tenant already has \(Self.maximumPerTenant) alert channels, the most it may have; delete one first")
            }
            return channel
        } catch let error as PSQLError where error.serverInfo?[.sqlState] == "23505" {
            throw StoreError(.alreadyExists, "an alert channel named \"\(definition.name)\" already exists; choose another name")
        }
    }

    public func list(tenantID: UUID) async throws -> [StoredAlertChannel] {
        try await Self.decode(client.query("""
            SELECT id, name, type, destination, created_at FROM alert_channels WHERE tenant_id = \(tenantID) ORDER BY name, id
            """, logger: logger))
    }

    public func get(tenantID: UUID, id: UUID) async throws -> StoredAlertChannel? {
        try await Self.decode(client.query("""
            SELECT id, name, type, destination, created_at FROM alert_channels WHERE tenant_id = \(tenantID) AND id = \(id)
            """, logger: logger)).first
    }

    /// The ids among `ids` the tenant has channels for.
    public func existing(tenantID: UUID, ids: [UUID]) async throws -> Set<UUID> {
        guard !ids.isEmpty else { return [] }
        let rows = try await client.query("SELECT id FROM alert_channels WHERE tenant_id = \(tenantID) AND id = ANY(\(ids))", logger: logger)
        var found: Set<UUID> = []
        for try await id in rows.decode(UUID.self) { found.insert(id) }
        return found
    }

    public func delete(tenantID: UUID, id: UUID) async throws -> Bool {
        let rows = try await client.query("DELETE FROM alert_channels WHERE tenant_id = \(tenantID) AND id = \(id) RETURNING id", logger: logger)
        var found = false
        for try await _ in rows.decode(UUID.self) { found = true }
        return found
    }

    /// The channel's settings, opened with `secretKey`; nil when the channel is gone.
    public func settings(tenantID: UUID, id: UUID, secretKey: SecretKey) async throws -> AlertChannelSettings? {
        let rows = try await client.query("SELECT type, sealed FROM alert_channels WHERE tenant_id = \(tenantID) AND id = \(id)",
                                          logger: logger)
        for try await (type, sealed) in rows.decode((String, ByteBuffer).self) {
            guard let kind = AlertChannelDefinition.Kind(rawValue: type) else {
                throw StoreError(.invalid, "alert channel \(id) is of a type this server does not know (\(type))")
            }
            let opened = try secretKey.open(Array(buffer: sealed))
            do {
                return try AlertChannelSettings(json: try JSONValue.parse(Data(opened)), kind: kind)
            } catch {
                throw StoreError(.invalid, "alert channel \(id) holds settings this server cannot read: \(error)")
            }
        }
        return nil
    }

    /// The tenant's Alertmanager channels and how often each wants a firing alert posted again.
    public func repostSeconds(tenantID: UUID) async throws -> [UUID: Int] {
        let rows = try await client.query("""
            SELECT id, repost_seconds FROM alert_channels WHERE tenant_id = \(tenantID) AND repost_seconds IS NOT NULL
            """, logger: logger)
        var result: [UUID: Int] = [:]
        for try await (id, seconds) in rows.decode((UUID, Int32).self) { result[id] = Int(seconds) }
        return result
    }

    private static func decode(_ rows: PostgresRowSequence) async throws -> [StoredAlertChannel] {
        var channels: [StoredAlertChannel] = []
        for try await (id, name, type, destination, createdAt) in rows.decode((UUID, String, String, String, Date).self) {
            channels.append(StoredAlertChannel(id: id, name: name, type: type, destination: destination, createdAt: createdAt))
        }
        return channels
    }
}
