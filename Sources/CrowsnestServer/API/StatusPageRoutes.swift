import CrowsnestWire
import Foundation
import Hummingbird
import Logging
import PostgresNIO

/// `GET /api/v1/status-page` and `PUT /api/v1/status-page` (admin): where the tenant's public status page lives
/// (`/status/{slug}`, unpublished while `slug` is null) and its title. Which services it shows is each service's
/// own `public` flag.
struct StatusPageRoutes: Sendable {
    let tenants: TenantStore

    static let example = #"{"slug":"acme","title":"Acme status"}"#

    func register(on group: RouterGroup<APIRequestContext>) {
        group.get("status-page") { _, context in
            let caller = try context.requireCaller()
            let page = try await self.tenants.statusPage(tenantID: caller.tenantID)
            return StatusPageJSON(slug: page.slug, title: page.title)
        }
        group.put("status-page") { request, context in
            let caller = try context.requireAdmin()
            let body = try await JSONBody.parse(request, context: context, example: Self.example, noun: "status page settings")
            let (slug, title): (String?, String)
            do {
                (slug, title) = try Self.parse(body)
            } catch let error as CheckValidationError {
                throw APIError.badRequest(error.description)
            }
            do {
                try await self.tenants.setStatusPage(tenantID: caller.tenantID, slug: slug, title: title)
            } catch let error as StoreError where error.code == .alreadyExists {
                throw APIError.conflict(error.message)
            }
            context.logger.info("status page set", metadata: ["status_page.slug": "\(slug ?? "-")"])
            return StatusPageJSON(slug: slug, title: title)
        }
    }

    /// `{"slug": "acme" | null, "title": "…"}`: a slug is 2–63 lowercase letters, digits and dashes, starting with a
    /// letter or digit; the title at most 100 characters.
    static func parse(_ body: JSONValue) throws -> (slug: String?, title: String) {
        let fields = try JSONFields(body, path: "", what: "the request body")
        try fields.refuseUnknown(allowed: ["slug", "title"], known: "the status page takes")
        var slug: String?
        let slugGiven: Bool
        if case .object(let object) = body { slugGiven = object["slug"] != nil } else { slugGiven = false }
        if fields.value("slug") != nil {
            guard let text = try fields.text("slug", required: true, maximumLength: 63) else { throw fields.error("slug", "is required") }
            guard isSlug(text) else {
                throw fields.error("slug", "must be 2 to 63 lowercase letters, digits and dashes, starting with a letter or digit (got \"\(text.prefix(70))\")")
            }
            slug = text
        } else if !slugGiven {
            throw fields.error("slug", "is required: the page's address /status/<slug>, or null to unpublish it")
        }
        let title = try fields.text("title", required: false, maximumLength: 100, controlCharacters: false) ?? ""
        return (slug, title)
    }

    static func isSlug(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        guard (2...63).contains(bytes.count) else { return false }
        func allowed(_ byte: UInt8) -> Bool {
            (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z")) || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9"))
        }
        return allowed(bytes[0]) && bytes.allSatisfy { allowed($0) || $0 == UInt8(ascii: "-") }
    }
}

struct StatusPageJSON: ResponseEncodable, Sendable {
    let slug: String?
    let title: String

    func encode(to encoder: any Encoder) throws {
        try JSONValue.object([
            "slug": slug.map(JSONValue.string) ?? .null, "title": .string(title),
            "url_path": slug.map { .string("/status/\($0)") } ?? .null,
        ]).encode(to: encoder)
    }
}
