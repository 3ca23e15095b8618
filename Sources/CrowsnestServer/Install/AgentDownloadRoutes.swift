import Foundation
import Hummingbird
import HTTPTypes

/// `GET /install.sh` (rendered) and `GET /downloads/…` (the agent binary, its unit, the example configuration),
/// without authentication: nothing here is secret (the CA pin is public by design), and a host being installed
/// has no credentials yet. Files are streamed from disk, never held whole in memory.
struct AgentDownloadRoutes {
    let downloads: AgentDownloads

    func register(on router: Router<APIRequestContext>) {
        let script = downloads.installScript
        router.get("install.sh") { _, _ in
            Response(status: .ok,
                     headers: [.contentType: "text/x-shellscript; charset=utf-8", .cacheControl: "no-store"],
                     body: .init(byteBuffer: ByteBuffer(string: script)))
        }
        let fileIO = FileIO()
        for file in AgentDownloads.served {
            let path = downloads.directory + "/" + file.name
            let sum = downloads.fileSHA256[file.name] ?? ""
            router.get(RouterPath(file.route)) { _, context in
                let body = try await fileIO.loadFile(path: path, context: context)
                return Response(status: .ok,
                                headers: [.contentType: file.contentType, .cacheControl: "no-store",
                                          HTTPField.Name("X-Content-SHA256")!: sum],
                                body: body)
            }
        }
    }
}
