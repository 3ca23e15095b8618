import Foundation
import XCTest

/// deploy/kubernetes validated with kubernetes-validate (PyPI) through scripts/validate-kubernetes.sh, strictly,
/// and a broken copy refused, so the check is known to look.
final class DeploymentManifestTests: XCTestCase {
    private static let repository = repositoryRoot

    private func validate(_ directory: String) -> Shell.Result {
        Shell.run(Self.repository + "/scripts/validate-kubernetes.sh", [directory])
    }

    func testTheKubernetesManifestsAreValidAndAllInTheKustomization() throws {
        let result = validate(Self.repository + "/deploy/kubernetes")
        XCTAssertEqual(result.status, 0, result.output + result.error)
        XCTAssertTrue(result.output.contains("5 manifests valid"), result.output)
        let daemonSet = try String(contentsOfFile: Self.repository + "/deploy/kubernetes/agent-daemonset.yaml", encoding: .utf8)
        for needed in ["kind: DaemonSet", "path: /var/run/docker.sock", "path: /proc", "path: /sys/fs/cgroup",
                       "path: /var/lib/crowsnest-agent", "name: crowsnest-agent-enrollment", "readOnly: true"] {
            XCTAssertTrue(daemonSet.contains(needed), "the agent DaemonSet lacks \(needed)")
        }
        let server = try String(contentsOfFile: Self.repository + "/deploy/kubernetes/server-deployment.yaml", encoding: .utf8)
        for needed in ["path: /readyz", "path: /healthz", "requests:"] {
            XCTAssertTrue(server.contains(needed), "the server Deployment lacks \(needed)")
        }
    }

    func testABrokenManifestOrOneMissingFromTheKustomizationIsRefused() throws {
        let copy = NSTemporaryDirectory() + "crowsnest-k8s-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: copy) }
        try FileManager.default.copyItem(atPath: Self.repository + "/deploy/kubernetes", toPath: copy)
        let pdb = copy + "/server-pdb.yaml"
        let text = try String(contentsOfFile: pdb, encoding: .utf8)
        try text.replacingOccurrences(of: "minAvailable: 1", with: "minAvailabel: 1").write(toFile: pdb, atomically: true, encoding: .utf8)
        let misspelt = validate(copy)
        XCTAssertNotEqual(misspelt.status, 0, "a misspelt field passed: \(misspelt.output)")
        try text.write(toFile: pdb, atomically: true, encoding: .utf8)
        XCTAssertEqual(validate(copy).status, 0)
        try "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: stray\n".write(toFile: copy + "/stray.yaml", atomically: true, encoding: .utf8)
        let stray = validate(copy)
        XCTAssertNotEqual(stray.status, 0)
        XCTAssertTrue(stray.error.contains("kustomization.yaml lists"), stray.error)
    }
}
