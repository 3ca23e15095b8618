import CrowsnestWire
import Foundation
import Logging
import PostgresNIO

/// The operator commands behind `crowsnest-server tenant|token|apikey`.
public struct ServerAdministration: Sendable {
    public let client: PostgresClient
    public let logger: Logger

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    /// `tenant create NAME`.
    public func createTenant(name: String) async throws -> UUID {
        try await TenantStore(client: client, logger: logger).create(name: name)
    }

    /// `token create --tenant NAME`: a single-use enrollment token, and the pin of the CA agents must trust.
    public func createEnrollmentToken(tenant: String, dataDirectory: String, serverNames: [String],
                                      lifetime: Duration = EnrollmentTokenStore.defaultLifetime) async throws -> (token: String, caPin: String) {
        let tenantID = try await TenantStore(client: client, logger: logger).id(named: tenant)
        let authority = try ServerConfiguration.loadAuthority(dataDirectory: dataDirectory, serverNames: serverNames, logger: logger)
        let token = try await EnrollmentTokenStore(client: client, logger: logger).create(tenantID: tenantID, lifetime: lifetime)
        return (token, authority.caPin.description)
    }

    /// `apikey create --tenant NAME --role admin|read`.
    public func createAPIKey(tenant: String, role: APIKeyRole) async throws -> String {
        let tenantID = try await TenantStore(client: client, logger: logger).id(named: tenant)
        return try await APIKeyStore(database: client, logger: logger).create(tenantID: tenantID, role: role).secret
    }
}
