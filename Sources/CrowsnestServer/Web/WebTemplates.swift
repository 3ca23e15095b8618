import Foundation
import Hummingbird
import Mustache

/// The page templates (swift-mustache, which HTML-escapes every `{{value}}`; triple mustaches are never used) and
/// the static files, loaded once from the server's resource bundle. A missing or broken template fails start-up,
/// not the first request that needs it.
public struct WebTemplates: Sendable {
    /// Every template a page renders; each must load.
    static let names = ["layout", "sign-in", "error", "overview", "chart", "sparkline", "statebar", "host", "container", "status", "status-row", "admin", "incidents", "checks", "sla", "check", "services", "service", "incident"]
    /// The static files served under `/static/`, with their content types.
    static let staticFiles = ["app.css": "text/css; charset=utf-8", "live.js": "text/javascript; charset=utf-8",
                              "favicon.svg": "image/svg+xml"]

    let library: MustacheLibrary
    let staticBodies: [String: (contentType: String, body: String)]

    /// Loads the bundled templates and static files.
    public static func bundled() throws -> WebTemplates {
        guard let templates = Bundle.module.url(forResource: "Templates", withExtension: nil),
              let statics = Bundle.module.url(forResource: "Static", withExtension: nil) else {
            throw WebTemplateError("the web templates are not in the server's resource bundle at \(Bundle.module.bundlePath)")
        }
        var library = MustacheLibrary()
        for name in names {
            let path = templates.appendingPathComponent(name + ".mustache").path
            guard let text = FileManager.default.contents(atPath: path).flatMap({ String(data: $0, encoding: .utf8) }) else {
                throw WebTemplateError("the web template \(path) cannot be read")
            }
            do {
                try library.register(text, named: name)
            } catch {
                throw WebTemplateError("the web template \(path) does not parse: \(error)")
            }
            if text.contains("{{{") || text.contains("{{&") {
                throw WebTemplateError("the web template \(path) has an unescaped value ({{{ or {{&): every value must be escaped")
            }
        }
        var bodies: [String: (contentType: String, body: String)] = [:]
        for (name, type) in staticFiles {
            let path = statics.appendingPathComponent(name).path
            guard let text = FileManager.default.contents(atPath: path).flatMap({ String(data: $0, encoding: .utf8) }) else {
                throw WebTemplateError("the static file \(path) cannot be read")
            }
            bodies[name] = (type, text)
        }
        return WebTemplates(library: library, staticBodies: bodies)
    }

    /// `view` rendered with template `name` as an HTML response.
    func page(_ name: String, _ view: Any, status: HTTPResponse.Status = .ok) -> Response {
        let html = library.render(view, withTemplate: name) ?? "<!doctype html><title>Crowsnest</title><p>This page could not be drawn."
        return Response(status: status, headers: [.contentType: "text/html; charset=utf-8", .cacheControl: "no-store"],
                        body: .init(byteBuffer: ByteBuffer(string: html)))
    }
}

/// A web template or static file is missing or broken.
public struct WebTemplateError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}
