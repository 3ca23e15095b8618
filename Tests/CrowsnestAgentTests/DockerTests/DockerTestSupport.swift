import CrowsnestAgent
import Foundation
import Logging
import XCTest

/// Shared plumbing for tests that talk to a real Docker engine.
enum DockerTestSupport {
    static let image = "crowsnest-test/busybox:latest"

    static var isCI: Bool { ProcessInfo.processInfo.environment["CI"] == "true" }

    static var repositoryRoot: URL {
        // Tests/CrowsnestAgentTests/DockerTests/DockerTestSupport.swift → repository root.
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent()
    }

    static func makeLogger() -> Logger {
        var logger = Logger(label: "crowsnest.test.docker")
        logger.logLevel = .info
        return logger
    }

    /// A unique container name with the prefix every Crowsnest test container carries.
    static func containerName(_ purpose: String) -> String {
        "crowsnest-test-\(purpose)-\(UUID().uuidString.prefix(8).lowercased())"
    }

    /// Fails under CI=true, skips otherwise: a missing engine is a broken CI but only an absence on a laptop.
    static func unavailable(_ reason: String, file: StaticString = #filePath, line: UInt = #line) -> Error {
        if isCI {
            XCTFail("Docker is required when CI=true: \(reason)", file: file, line: line)
            return DockerUnavailable(reason: reason)
        }
        return XCTSkip("Docker not available: \(reason)")
    }

    struct DockerUnavailable: Error, CustomStringConvertible {
        var reason: String
        var description: String { "Docker not available: \(reason)" }
    }

    /// A client connected to a live engine with the test image present, or a skip/failure.
    static func liveClient() async throws -> DockerClient {
        let client: DockerClient
        do {
            client = try DockerClient(dockerHost: DockerClient.dockerHostFromEnvironment, logger: makeLogger())
        } catch {
            throw unavailable("\(error)")
        }
        do {
            _ = try await client.version()
        } catch let error as DockerClientError where error.code == .socketUnreachable || error.code == .timeout {
            throw unavailable("\(error) (start it with scripts/ensure-docker.sh)")
        } catch {
            // The engine is there but the client cannot talk to it: that is a bug, not an absence.
            throw error
        }
        guard (try? docker(["version", "--format", "{{.Server.Version}}"]))?.status == 0 else {
            throw unavailable("the docker CLI is missing or cannot reach the engine")
        }
        if try docker(["image", "inspect", image]).status != 0 {
            let build = try run(
                "/bin/bash",
                [repositoryRoot.appendingPathComponent("scripts/build-test-image.sh").path]
            )
            if build.status != 0 {
                throw unavailable("cannot build \(image): \(build.stderr)")
            }
        }
        return client
    }

    struct CommandResult {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    @discardableResult
    static func docker(_ arguments: [String]) throws -> CommandResult {
        try run("/usr/bin/env", ["docker"] + arguments)
    }

    /// Runs `docker` and fails the test when it does not exit 0; returns trimmed stdout.
    @discardableResult
    static func dockerOK(_ arguments: [String], file: StaticString = #filePath, line: UInt = #line) throws -> String {
        let result = try docker(arguments)
        guard result.status == 0 else {
            XCTFail("docker \(arguments.joined(separator: " ")) failed: \(result.stderr)", file: file, line: line)
            throw DockerUnavailable(reason: result.stderr)
        }
        return result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    static func run(_ executable: String, _ arguments: [String]) throws -> CommandResult {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let stdout = Pipe()
        let stderr = Pipe()
        process.standardOutput = stdout
        process.standardError = stderr
        try process.run()
        let out = stdout.fileHandleForReading.readDataToEndOfFile()
        let err = stderr.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return CommandResult(
            status: process.terminationStatus,
            stdout: String(decoding: out, as: UTF8.self),
            stderr: String(decoding: err, as: UTF8.self)
        )
    }

    static func nowUnixNano() -> Int64 {
        Int64(Date().timeIntervalSince1970 * 1e9)
    }

    struct Timeout: Error, CustomStringConvertible {
        var what: String
        var description: String { "timed out waiting for \(what)" }
    }

    /// Reads events from `stream` until `done` holds for what was collected, or fails after `seconds`.
    static func collectEvents(
        _ stream: AsyncThrowingStream<DockerEvent, Error>,
        seconds: Double,
        what: String,
        until done: @escaping @Sendable ([DockerEvent]) -> Bool
    ) async throws -> [DockerEvent] {
        try await withThrowingTaskGroup(of: [DockerEvent].self) { group in
            group.addTask {
                var collected: [DockerEvent] = []
                for try await event in stream {
                    collected.append(event)
                    if done(collected) { return collected }
                }
                if done(collected) { return collected }
                throw Timeout(what: "\(what) (stream ended after \(collected.map(\.rawAction)))")
            }
            group.addTask {
                try await Task.sleep(for: .seconds(seconds))
                throw Timeout(what: what)
            }
            defer { group.cancelAll() }
            return try await group.next()!
        }
    }

    /// Runs `operation` `count` times, spread over `workers` concurrent tasks, and counts each outcome: "ok" for a
    /// call that returned, the error's description for one that threw. A test asserts on the whole histogram, so a
    /// failure shows every distinct error and how often it happened.
    static func outcomes(
        count: Int,
        workers: Int,
        _ operation: @escaping @Sendable () async throws -> Void
    ) async -> [String: Int] {
        await withTaskGroup(of: [String: Int].self) { group in
            for worker in 0..<workers {
                let share = count / workers + (worker < count % workers ? 1 : 0)
                group.addTask {
                    var seen: [String: Int] = [:]
                    for _ in 0..<share {
                        do {
                            try await operation()
                            seen["ok", default: 0] += 1
                        } catch {
                            seen["\(error)", default: 0] += 1
                        }
                    }
                    return seen
                }
            }
            var all: [String: Int] = [:]
            for await seen in group { all.merge(seen, uniquingKeysWith: +) }
            return all
        }
    }

    /// Polls `probe` every 200 ms until it returns a value, or fails after `seconds`.
    static func eventually<T>(
        seconds: Double,
        what: String,
        _ probe: () async throws -> T?
    ) async throws -> T {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if let value = try await probe() { return value }
            try await Task.sleep(for: .milliseconds(200))
        }
        throw Timeout(what: what)
    }
}
