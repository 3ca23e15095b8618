import CrowsnestWire
#if canImport(Glibc)
import Glibc
#endif
import Logging
import NIOCore
import NIOSSL
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Why enrollment failed, in one line for the operator.
public struct EnrollmentError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// First contact: proves the server against the operator's CA pin, trades a token and a CSR for a client
/// certificate, and saves the credentials in the state directory.
public struct Enroller: Sendable {
    public var servers: [ServerAddress]
    public var token: String
    public var pin: CAPin
    public var stateDirectory: String
    public var logger: Logger

    public init(servers: [ServerAddress], token: String, pin: CAPin, stateDirectory: String, logger: Logger) {
        self.servers = servers
        self.token = token
        self.pin = pin
        self.stateDirectory = stateDirectory
        self.logger = logger
    }

    /// Enrolls with the first server that answers; returns the saved credentials.
    public func enroll(host: Crowsnest_V1_HostFacts, agentVersion: String) async throws -> AgentCredentials {
        let (keyPEM, csrPEM) = try AgentCredentials.generateKeyAndCSR(hostname: host.hostname)
        var request = Crowsnest_V1_EnrollRequest()
        request.token = token
        request.csrPem = csrPEM
        request.host = host
        request.agentVersion = agentVersion
        var failures: [String] = []
        for server in servers {
            let tls = try EnrollmentTLS(pin: pin)
            do {
                var response: Crowsnest_V1_EnrollResponse?
                try await ServerConnection.connect(host: server.host, port: server.port, makeTLSHandlers: {
                    [try tls.makeHandler(serverHost: server.host)]
                }) { inbound, outbound in
                    var channel = FrameChannel(inbound: inbound, outbound: outbound)
                    try await channel.send(.with(.enrollRequest(request)))
                    guard let frame = try await channel.next() else {
                        throw EnrollmentError("server closed the connection without answering")
                    }
                    switch frame.message {
                    case .enrollResponse(let message): response = message
                    case .reject(let reject): throw EnrollmentError("server refused enrollment: \(reject.reason)")
                    case .goodbye(let goodbye): throw EnrollmentError("server refused enrollment: \(goodbye.reason)")
                    default: throw EnrollmentError("server answered with \(frame.messageName) instead of a certificate")
                    }
                }
                guard let response else { throw EnrollmentError("no enrollment response") }
                guard let verifiedCA = tls.verifiedCACertificatePEM else {
                    throw EnrollmentError("the server's CA was not verified against the pin")
                }
                // Trust the CA we verified against the pin, not whatever the response claims.
                let credentials = try AgentCredentials(privateKeyPEM: keyPEM, certificatePEM: response.certificatePem,
                                                       caCertificatePEM: verifiedCA,
                                                       serverAddresses: servers.map(\.description))
                try credentials.save(stateDirectory: stateDirectory)
                logger.info("enrolled", metadata: ["agent.id": "\(response.agentID)", "tenant.id": "\(response.tenantID)",
                                                   "server": "\(server)"])
                return credentials
            } catch let error as EnrollmentError {
                throw error  // the server answered: retrying elsewhere with the same token will not help
            } catch {
                if let why = tls.lastVerificationFailure {
                    failures.append("\(server): refused the server: \(why) (is the CA pin right for this server?)")
                } else {
                    failures.append("\(server): \(Self.explain(error))")
                }
            }
        }
        throw EnrollmentError("cannot enroll with any server: " + failures.joined(separator: "; "))
    }

    static func explain(_ error: Error) -> String {
        if let ssl = error as? NIOSSLError, case .handshakeFailed = ssl {
            return "TLS handshake failed (is the CA pin right for this server?): \(ssl)"
        }
        return "\(error)"
    }
}

/// Facts about this host sent in `Hello` and at enrollment.
public enum HostFactsReader {
    public static func read(procRoot: String = "/proc", dockerVersion: String = "") -> Crowsnest_V1_HostFacts {
        var facts = Crowsnest_V1_HostFacts()
        var name = [CChar](repeating: 0, count: 256)
        if gethostname(&name, name.count) == 0 {
            facts.hostname = String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
        var system = utsname()
        if uname(&system) == 0 {
            facts.kernel = withUnsafeBytes(of: system.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            facts.architecture = withUnsafeBytes(of: system.machine) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        }
        if let release = try? String(contentsOfFile: "/etc/os-release", encoding: .utf8),
           let line = release.split(separator: "\n").first(where: { $0.hasPrefix("PRETTY_NAME=") }) {
            facts.os = String(line.dropFirst("PRETTY_NAME=".count).filter { $0 != "\"" })
        }
        facts.cpuCount = UInt32(max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN))))
        if let meminfo = try? String(contentsOfFile: procRoot + "/meminfo", encoding: .utf8) {
            facts.memoryTotalBytes = MemoryInfoCollector.parse(meminfo).totalBytes
        }
        facts.dockerVersion = dockerVersion
        return facts
    }
}
