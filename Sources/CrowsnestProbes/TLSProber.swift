import CrowsnestWire
import NIOCore
import NIOSSL
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// `tls` checks: the certificate chain any TLS server presents at `host:port` — the earliest expiry in the chain
/// and whether the leaf is for the expected name. Trust is not judged (self-signed and private-CA certificates
/// are what internal services have); an expired certificate, one expiring within `min_days`, or a name mismatch
/// fails the check.
struct TLSProber: Sendable {
    let dialer: ProbeDialer
    let resolver: GuardedResolver
    let tls: ProbeTLS

    func probe(_ target: String, options: [String: String], deadline: ContinuousClock.Instant) async throws -> ProbeOutcome {
        let start = ContinuousClock.now
        let hostPort = try ProbeHostPort(target)
        let serverName = try ProbeOptions(options).string("server_name")
            ?? (IPAddress(hostPort.host) == nil ? hostPort.host : nil)
        let minDays = try ProbeOptions(options).integer("min_days")
        let addresses = try await resolver.resolve(host: hostPort.host, port: hostPort.port)
        let context = try tls.inspectingContext()
        let recorder = PeerChainRecorder()
        let (channel, address) = try await dialer.connect(to: addresses, deadline: deadline) { channel in
            channel.eventLoop.makeCompletedFuture {
                let done = channel.eventLoop.makePromise(of: Void.self)
                try channel.pipeline.syncOperations.addHandler(
                    ProbeTLS.clientHandler(context: context, serverName: serverName, recorder: recorder))
                try channel.pipeline.syncOperations.addHandler(HandshakeWaiter(promise: done))
                return (channel, done.futureResult)
            }
        }
        let (connection, handshake) = channel
        defer { connection.close(promise: nil) }
        do {
            try await handshake.get(closingOnCancel: connection)
        } catch let error as NIOSSLError {
            throw ProbeFailure("TLS handshake with \(ProbeDialer.describe(address)) failed: \(error)")
        }
        let latency = (ContinuousClock.now - start).milliseconds
        let chain = recorder.certificates
        guard let leafCertificate = chain.first, let earliest = recorder.earliestExpiry else {
            throw ProbeFailure("\(ProbeDialer.describe(address)) presented no certificate")
        }
        let leaf = try LeafCertificate(leafCertificate)
        var outcome = ProbeOutcome(ok: true, latencyMs: latency)
        outcome.certificateNotAfterUnixMs = earliest * 1000
        let daysLeft = (Double(earliest) - Date().timeIntervalSince1970) / 86_400
        outcome.figures["days_left"] = (daysLeft * 100).rounded() / 100
        outcome.figures["chain_length"] = Double(chain.count)
        outcome.details["address"] = ProbeDialer.describe(address)
        outcome.details["subject"] = WireTextCleaner.excerpt(leaf.subject)
        outcome.details["issuer"] = WireTextCleaner.excerpt(leaf.issuer)
        outcome.details["names"] = ProbeText.bounded(leaf.names.joined(separator: ", "))
        if let index = chain.firstIndex(where: { Int64($0.notValidAfter) == earliest }), index > 0 {
            outcome.details["earliest_expiry_in"] = "certificate \(index + 1) of \(chain.count) in the chain"
        }
        if let problem = Self.judge(leaf: leaf, serverName: serverName, daysLeft: daysLeft, minDays: minDays) {
            outcome.ok = false
            outcome.error = problem
        }
        return outcome
    }

    static func judge(leaf: LeafCertificate, serverName: String?, daysLeft: Double, minDays: Int?) -> String? {
        if daysLeft < 0 { return "a certificate in the chain expired \(Int((-daysLeft).rounded())) days ago" }
        if let minDays, daysLeft < Double(minDays) {
            return "a certificate in the chain expires in \(Int(daysLeft)) days, fewer than \(minDays)"
        }
        if let serverName, !leaf.matches(serverName) {
            let names = leaf.names.isEmpty ? "no names" : ProbeText.bounded(leaf.names.joined(separator: ", "))
            return "the certificate is not for \(serverName) (it is for \(names))"
        }
        return nil
    }
}

/// A probe's options as they travel in `Assign.options` (each a JSON text), read one by one with clear errors.
struct ProbeOptions {
    let texts: [String: String]

    init(_ texts: [String: String]) { self.texts = texts }

    func value(_ name: String) throws -> JSONValue? {
        guard let text = texts[name] else { return nil }
        do {
            let value = try JSONValue.parse(Data(text.utf8))
            return value == .null ? nil : value
        } catch {
            throw ProbeFailure("option \(name) is not JSON: \(WireTextCleaner.excerpt(text))")
        }
    }

    func string(_ name: String) throws -> String? {
        guard let found = try value(name) else { return nil }
        guard case .string(let text) = found else { throw ProbeFailure("option \(name) must be a string") }
        return text
    }

    func integer(_ name: String) throws -> Int? {
        guard let found = try value(name) else { return nil }
        guard case .integer(let number) = found else { throw ProbeFailure("option \(name) must be an integer") }
        return Int(clamping: number)
    }

    func number(_ name: String) throws -> Double? {
        switch try value(name) {
        case nil: return nil
        case .integer(let number)?: return Double(number)
        case .number(let number)?: return number
        default: throw ProbeFailure("option \(name) must be a number")
        }
    }

    func bool(_ name: String) throws -> Bool? {
        guard let found = try value(name) else { return nil }
        guard case .bool(let flag) = found else { throw ProbeFailure("option \(name) must be true or false") }
        return flag
    }

    func strings(_ name: String) throws -> [String] {
        switch try value(name) {
        case nil: return []
        case .string(let text)?: return [text]
        case .array(let items)?:
            return try items.map { item in
                guard case .string(let text) = item else { throw ProbeFailure("option \(name) must be a list of strings") }
                return text
            }
        default: throw ProbeFailure("option \(name) must be a string or a list of strings")
        }
    }
}
