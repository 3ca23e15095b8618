import CrowsnestAgent
import Foundation
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// What the client says when the engine is not there or does not answer; needs no Docker.
final class DockerClientErrorTests: XCTestCase {
    private func temporarySocketPath() -> String {
        "/tmp/crowsnest-test-\(UUID().uuidString.prefix(8).lowercased()).sock"
    }

    /// Binds a unix socket at `path`; with `listen` it accepts connections (and never answers).
    private func bindSocket(at path: String, listen shouldListen: Bool) throws -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        XCTAssertGreaterThanOrEqual(fd, 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { buffer in
            for (index, byte) in path.utf8.enumerated() { buffer[index] = byte }
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        XCTAssertEqual(bound, 0, "bind \(path)")
        if shouldListen { XCTAssertEqual(listen(fd, 8), 0) }
        addTeardownBlock {
            close(fd)
            unlink(path)
        }
        return fd
    }

    func testMissingSocketNamesPathAndCall() async throws {
        let path = temporarySocketPath()
        let client = DockerClient(socketPath: path, logger: DockerTestSupport.makeLogger())
        do {
            _ = try await client.listContainers()
            XCTFail("listing containers at a missing socket should fail")
        } catch let error as DockerClientError {
            XCTAssertEqual(error.code, .socketUnreachable)
            XCTAssertEqual(error.socketPath, path)
            XCTAssertEqual(
                error.description,
                "list containers: cannot reach the Docker engine at \(path): no such socket (is dockerd running?)"
            )
        } catch {
            XCTFail("unexpected error: \(error)")
        }
    }

    func testSocketNobodyListensOnIsConnectionRefused() async throws {
        let path = temporarySocketPath()
        _ = try bindSocket(at: path, listen: false)
        let client = DockerClient(socketPath: path, logger: DockerTestSupport.makeLogger())
        do {
            _ = try await client.version()
            XCTFail("a socket without listener should refuse")
        } catch let error as DockerClientError {
            XCTAssertEqual(error.code, .socketUnreachable)
            XCTAssertEqual(
                error.description,
                "read engine version: cannot reach the Docker engine at \(path): connection refused (is dockerd running?)"
            )
        } catch {
            XCTFail("unexpected error: \(error)")
        }
    }

    func testSilentEngineTimesOut() async throws {
        let path = temporarySocketPath()
        _ = try bindSocket(at: path, listen: true)
        let client = DockerClient(socketPath: path, requestTimeout: .milliseconds(300), logger: DockerTestSupport.makeLogger())
        let started = Date()
        do {
            _ = try await client.inspect("web")
            XCTFail("a silent engine should time out")
        } catch let error as DockerClientError {
            XCTAssertEqual(error.code, .timeout)
            XCTAssertTrue(error.description.hasPrefix("inspect container web: the Docker engine at \(path) did not answer in time"), error.description)
        } catch {
            XCTFail("unexpected error: \(error)")
        }
        XCTAssertLessThan(Date().timeIntervalSince(started), 5)
    }

    func testEventStreamFromASilentEngineEndsWithATimeoutInsteadOfHanging() async throws {
        let path = temporarySocketPath()
        _ = try bindSocket(at: path, listen: true)
        let client = DockerClient(socketPath: path, requestTimeout: .milliseconds(300), logger: DockerTestSupport.makeLogger())
        let started = Date()
        do {
            for try await _ in client.events() {}
            XCTFail("the event stream of an engine that never answers should fail")
        } catch let error as DockerClientError {
            XCTAssertEqual(error.code, .timeout)
            XCTAssertTrue(error.description.hasPrefix("watch container events: the Docker engine at \(path) did not answer in time"), error.description)
        } catch {
            XCTFail("unexpected error: \(error)")
        }
        XCTAssertLessThan(Date().timeIntervalSince(started), 5)
    }

    func testEventStreamFromMissingSocketEndsWithError() async throws {
        let path = temporarySocketPath()
        let client = DockerClient(socketPath: path, logger: DockerTestSupport.makeLogger())
        do {
            for try await _ in client.events() {}
            XCTFail("the event stream of a missing socket should fail")
        } catch let error as DockerClientError {
            XCTAssertEqual(error.code, .socketUnreachable)
            XCTAssertTrue(error.description.hasPrefix("watch container events: cannot reach the Docker engine at \(path)"), error.description)
        } catch {
            XCTFail("unexpected error: \(error)")
        }
    }
}
