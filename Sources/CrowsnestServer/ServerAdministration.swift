import CrowsnestWire
import Foundation
import Logging
import PostgresNIO

/// Why `token create` prints no install line.
public struct InstallLineUnavailable: Error, Sendable {
    public let reason: String
}

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

    /// `tenant allow-network NAME CIDR`: the tenant's checks may reach `cidr` even where the SSRF guard refuses its
    /// class of address (loopback, private, link-local, metadata). Returns the normalised network and whether it
    /// was new.
    public func allowNetwork(tenant: String, cidr: String) async throws -> (network: IPNetwork, added: Bool) {
        guard let network = IPNetwork(cidr.trimmingCharacters(in: .whitespaces)) else {
            throw StoreError(.invalid, "\"\(cidr)\" is not an IP address or CIDR network (e.g. 10.20.0.0/16 or fd00::/8)")
        }
        let tenants = TenantStore(client: client, logger: logger)
        let tenantID = try await tenants.id(named: tenant)
        let added = try await tenants.allowNetwork(tenantID: tenantID, network: network)
        logger.info("network allowed for a tenant's checks", metadata: ["tenant": "\(tenant)", "network": "\(network)"])
        return (network, added)
    }

    /// `token create --tenant NAME [--uses N] [--expires 7d]`: an enrollment token (single-use unless told), and the
    /// pin of the CA agents must trust (read from the database: administrative commands never create a CA).
    public func createEnrollmentToken(tenant: String, lifetime: Duration = EnrollmentTokenStore.defaultLifetime,
                                      uses: Int = 1) async throws -> (token: String, caPin: String) {
        let tenantID = try await TenantStore(client: client, logger: logger).id(named: tenant)
        guard let pin = try await CertificateAuthorityStore.pin(client: client, logger: logger) else {
            throw StoreError(.notFound, "no server has started with this database yet, so there is no certificate authority "
                + "to pin: start 'crowsnest-server serve' once, then create the token")
        }
        let token = try await EnrollmentTokenStore(client: client, logger: logger).create(tenantID: tenantID, lifetime: lifetime, uses: uses)
        return (token, pin)
    }

    /// The line to paste on a new host for `token`, built from the `public_url` and install script checksum the
    /// server recorded at start; or, when there is none, why.
    public func installLine(token: String) async throws -> Result<String, InstallLineUnavailable> {
        let settings = try await ServerSettingStore(client: client, logger: logger).all()
        guard let url = settings[.publicURL] else {
            return .failure(InstallLineUnavailable(reason: "no one-line install: set public_url in the server's configuration "
                + "(where hosts reach it) and restart it"))
        }
        guard let sum = settings[.installScriptSHA256] else {
            return .failure(InstallLineUnavailable(reason: "no one-line install: the server at \(url) has no agent downloads "
                + "(its log says which file is missing from agent_downloads)"))
        }
        return .success(InstallLine.line(publicURL: url, scriptSHA256: sum, token: token))
    }

    /// `apikey create --tenant NAME --role admin|read [--expires-in-days N]`.
    public func createAPIKey(tenant: String, role: APIKeyRole, expiresAt: Date? = nil) async throws -> String {
        let tenantID = try await TenantStore(client: client, logger: logger).id(named: tenant)
        return try await APIKeyStore(database: client, logger: logger).create(tenantID: tenantID, role: role, expiresAt: expiresAt).secret
    }

    /// `user create --tenant NAME --username NAME --role admin|read`, the password read by the caller.
    public func createUser(tenant: String, username: String, role: APIKeyRole, password: String,
                           hasher: PasswordHasher = PasswordHasher()) async throws -> WebUser {
        if let problem = PasswordHasher.problem(password: password) { throw StoreError(.invalid, problem) }
        if let problem = UserStore.problem(username: username) { throw StoreError(.invalid, problem) }
        let tenantID = try await TenantStore(client: client, logger: logger).id(named: tenant)
        let hash = try await hasher.hash(password)
        return try await UserStore(client: client, logger: logger).create(tenantID: tenantID, username: username, role: role,
                                                                          passwordHash: hash)
    }

    /// `apikey list --tenant NAME`.
    public func listAPIKeys(tenant: String) async throws -> [APIKeyListing] {
        let tenantID = try await TenantStore(client: client, logger: logger).id(named: tenant)
        return try await APIKeyStore(database: client, logger: logger).list(tenantID: tenantID)
    }

    /// `apikey revoke --tenant NAME ID`.
    public func revokeAPIKey(tenant: String, keyID: UUID) async throws {
        let tenantID = try await TenantStore(client: client, logger: logger).id(named: tenant)
        guard try await APIKeyStore(database: client, logger: logger).revoke(tenantID: tenantID, keyID: keyID) else {
            throw StoreError(.notFound, "tenant \(tenant) has no unrevoked API key \(keyID.uuidString.lowercased())")
        }
    }

    /// `agent list [--tenant NAME]`.
    public func listAgents(tenant: String?) async throws -> [AgentListing] {
        if let tenant { _ = try await TenantStore(client: client, logger: logger).id(named: tenant) }
        return try await AgentStore(client: client, logger: logger).list(tenantName: tenant)
    }

    /// `agent revoke ID`: the agent's session is closed within seconds and its reconnects are refused.
    public func revokeAgent(_ agentID: UUID) async throws {
        guard try await AgentStore(client: client, logger: logger).revoke(agentID: agentID) else {
            throw StoreError(.notFound, "no unrevoked agent \(agentID.uuidString.lowercased())")
        }
    }
}
