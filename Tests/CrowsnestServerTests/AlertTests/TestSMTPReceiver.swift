import Foundation
import XCTest

/// A real SMTP server on loopback for the email channel's tests: `scripts/smtp-receiver.sh` (Python's aiosmtpd from
/// PyPI, installed into a virtual environment on first use) with a self-signed certificate, STARTTLS or TLS from
/// the first byte, optional AUTH, and every accepted message logged. It fails the test when it cannot start —
/// these tests never pass by skipping.
final class TestSMTPReceiver: @unchecked Sendable {
    struct Message: Sendable {
        let mailFrom: String
        let recipients: [String]
        let authenticated: Bool
        let data: String
    }

    let port: Int
    private let process: Process
    private let directory: String

    private init(port: Int, process: Process, directory: String) {
        (self.port, self.process, self.directory) = (port, process, directory)
    }

    static var repositoryRoot: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().path
    }

    /// `mode`: starttls, tls or plain (no STARTTLS offered).
    static func start(mode: String, user: String? = nil, password: String? = nil, rejectRecipients: Bool = false) async throws -> TestSMTPReceiver {
        let directory = NSTemporaryDirectory() + "crowsnest-smtp-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: repositoryRoot + "/scripts/smtp-receiver.sh")
        var arguments = ["--mode", mode, "--log", directory + "/mail.jsonl", "--port-file", directory + "/port"]
        if let user { arguments += ["--user", user, "--password", password ?? ""] }
        if rejectRecipients { arguments.append("--reject-recipients") }
        process.arguments = arguments
        FileManager.default.createFile(atPath: directory + "/output.log", contents: nil)
        let outputFile = try FileHandle(forWritingTo: URL(fileURLWithPath: directory + "/output.log"))
        process.standardOutput = outputFile
        process.standardError = outputFile
        try process.run()
        // The first start installs aiosmtpd from PyPI.
        let deadline = Date().addingTimeInterval(180)
        while Date() < deadline {
            if let text = try? String(contentsOfFile: directory + "/port", encoding: .utf8), let port = Int(text) {
                return TestSMTPReceiver(port: port, process: process, directory: directory)
            }
            if !process.isRunning {
                let log = (try? String(contentsOfFile: directory + "/output.log", encoding: .utf8)) ?? ""
                throw NSError(domain: "TestSMTPReceiver", code: 1, userInfo: [NSLocalizedDescriptionKey:
                    "scripts/smtp-receiver.sh exited with \(process.terminationStatus) before it listened: \(log.suffix(2000))"])
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        kill(process.processIdentifier, SIGKILL)
        throw NSError(domain: "TestSMTPReceiver", code: 2, userInfo: [NSLocalizedDescriptionKey: "scripts/smtp-receiver.sh did not listen within 180 s"])
    }

    /// The messages accepted so far, in order.
    var messages: [Message] {
        guard let text = try? String(contentsOfFile: directory + "/mail.jsonl", encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap { line in
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else { return nil }
            return Message(mailFrom: object["mail_from"] as? String ?? "", recipients: object["rcpt_tos"] as? [String] ?? [],
                           authenticated: object["authenticated"] as? Bool ?? false, data: object["data"] as? String ?? "")
        }
    }

    func stop() {
        if process.isRunning {
            // SIGKILL: the test process may ignore SIGTERM (service-lifecycle sets that up), and children inherit it.
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        try? FileManager.default.removeItem(atPath: directory)
    }

    deinit { stop() }
}
