import Crypto
import CrowsnestWire
import Foundation

/// What each kind of channel is sent for one notification, written at delivery from the notification's payload
/// (`AlertNotification` in server/openapi.yaml, which a `webhook` channel gets as it is). Every name and cause in
/// it may come from a hostile container or probe answer: each format escapes what its receiver would interpret
/// (Slack's `<…>` links and mentions, Discord's mentions and Markdown, mail headers), and bounds the length.
enum AlertMessages {
    /// The fields of a payload, read leniently (a missing field reads as empty).
    struct Notice {
        let object: [String: JSONValue]

        init(_ payload: JSONValue) {
            if case .object(let object) = payload { self.object = object } else { self.object = [:] }
        }

        func text(_ key: String) -> String {
            if case .string(let text)? = object[key] { return text }
            return ""
        }

        func nested(_ key: String, _ field: String) -> String {
            if case .object(let inner)? = object[key], case .string(let text)? = inner[field] { return text }
            return ""
        }

        var id: String { text("id") }
        var kind: String { text("kind") }
        var summary: String { text("summary") }
        /// Whether the alert is active after this notification (false for a recovery).
        var firing: Bool {
            if case .bool(let flag)? = object["firing"] { return flag }
            return kind != AlertNotificationKind.resolved.rawValue && kind != AlertNotificationKind.flappingStopped.rawValue
        }

        /// "FIRING", "RESOLVED", "STOPPED FLAPPING"…
        var heading: String { kind.replacingOccurrences(of: "_", with: " ").uppercased() }

        /// The lines every human-readable format shows, in order.
        var detailLines: [(label: String, value: String)] {
            [("rule", nested("rule", "name")), ("target", "\(nested("target", "kind")) \(nested("target", "name")) (\(nested("target", "id")))"),
             ("state", text("state")), ("since", text("since")), ("cause", text("cause")), ("tenant", text("tenant")),
             ("notification", id)]
                .filter { !$0.value.isEmpty }
        }
    }

    static func bounded(_ text: String, _ limit: Int) -> String {
        text.count <= limit ? text : String(text.prefix(limit - 1)) + "…"
    }

    // MARK: Slack

    /// A Slack incoming-webhook body: `text` in Slack's markup with `&`, `<` and `>` escaped, so nothing in it
    /// becomes a link, a channel mention or `@here`.
    static func slack(_ payload: JSONValue) -> String {
        let notice = Notice(payload)
        func escaped(_ text: String) -> String {
            bounded(text, 500).replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
                .replacingOccurrences(of: ">", with: "&gt;")
        }
        var lines = ["*\(notice.heading)* \(escaped(notice.summary))"]
        lines += notice.detailLines.map { "\($0.label): \(escaped($0.value))" }
        return JSONValue.object(["text": .string(lines.joined(separator: "\n"))]).jsonText
    }

    // MARK: Discord

    /// A Discord webhook body: `content` with Markdown characters escaped, at most 2,000 characters, and
    /// `allowed_mentions` empty so `@everyone` in a container's name pings nobody.
    static func discord(_ payload: JSONValue) -> String {
        let notice = Notice(payload)
        let special = Set("\\*_~`|>[]()#-:@<".unicodeScalars)
        func escaped(_ text: String) -> String {
            var result = ""
            for scalar in bounded(text, 400).unicodeScalars {
                if special.contains(scalar) { result.unicodeScalars.append("\\") }
                result.unicodeScalars.append(scalar)
            }
            return result
        }
        var lines = ["**\(notice.heading)** \(escaped(notice.summary))"]
        lines += notice.detailLines.map { "\($0.label)\\: \(escaped($0.value))" }
        return JSONValue.object([
            "content": .string(bounded(lines.joined(separator: "\n"), 2000)),
            "allowed_mentions": .object(["parse": .array([])]),
        ]).jsonText
    }

    // MARK: Alertmanager

    /// One alert for Alertmanager's `POST /api/v2/alerts`. Its labels identify it (rule and target), so every
    /// post of one firing lands on one Alertmanager alert; `endsAt` is three repost intervals ahead while it fires
    /// (it resolves by itself if this server stops posting) and the recovery's time once it recovered.
    static func alertmanager(_ payload: JSONValue, repostSeconds: Int, now: Date) -> String {
        let notice = Notice(payload)
        let ends = notice.firing ? now.addingTimeInterval(Double(3 * repostSeconds))
            : (RFC3339.date(from: notice.text("created_at")) ?? now)
        var alert: [String: JSONValue] = [
            "labels": .object([
                "alertname": .string(bounded(notice.nested("rule", "name"), 200)),
                "crowsnest_rule": .string(notice.nested("rule", "id")),
                "crowsnest_target": .string(notice.nested("target", "id")),
                "target_kind": .string(notice.nested("target", "kind")),
                "target_name": .string(bounded(notice.nested("target", "name"), 200)),
                "tenant": .string(bounded(notice.text("tenant"), 200)),
            ]),
            "annotations": .object([
                "summary": .string(bounded(notice.summary, 1000)),
                "cause": .string(bounded(notice.text("cause"), 1000)),
                "state": .string(notice.text("state")),
                "notification": .string(notice.kind),
            ]),
            "endsAt": .string(RFC3339.string(from: ends)),
        ]
        if !notice.text("since").isEmpty { alert["startsAt"] = .string(notice.text("since")) }
        return JSONValue.array([.object(alert)]).jsonText
    }

    // MARK: Email

    /// A plain-text message (RFC 5322): the subject and every header value that carries a name encoded as an
    /// RFC 2047 word (a line break in a name cannot add a header), the body in base64. One alert's messages share
    /// a `References` id, so mail readers thread a firing with its recovery.
    static func email(_ payload: JSONValue, from: String, to: [String], now: Date) -> String {
        let notice = Notice(payload)
        let thread = SHA256.hash(data: Data("\(notice.nested("rule", "id"))/\(notice.nested("target", "id"))/\(notice.text("since"))".utf8))
            .prefix(16).map { String(format: "%02x", $0) }.joined()
        let subject = "[crowsnest] \(notice.heading): \(bounded(notice.summary, 200))"
        var body = notice.summary + "\n\n"
        body += notice.detailLines.map { "\($0.label): \(bounded($0.value, 2000))" }.joined(separator: "\n") + "\n"
        let headers = [
            "From: \(from)",
            "To: \(to.joined(separator: ", "))",
            "Subject: \(encodedWords(subject))",
            "Date: \(rfc5322Date(now))",
            "Message-ID: <\(notice.id.isEmpty ? UUID().uuidString.lowercased() : notice.id)@crowsnest>",
            "References: <\(thread)@crowsnest>",
            "In-Reply-To: <\(thread)@crowsnest>",
            "X-Crowsnest-Notification-Id: \(notice.id)",
            "MIME-Version: 1.0",
            "Content-Type: text/plain; charset=utf-8",
            "Content-Transfer-Encoding: base64",
        ]
        let encoded = Data(body.utf8).base64EncodedString(options: [.lineLength76Characters, .endLineWithCarriageReturn, .endLineWithLineFeed])
        return headers.joined(separator: "\r\n") + "\r\n\r\n" + encoded + "\r\n"
    }

    /// `text` as RFC 2047 `=?UTF-8?B?…?=` words of at most 75 characters, folded onto continuation lines; every
    /// character, line breaks included, ends up inside base64.
    static func encodedWords(_ text: String) -> String {
        var words: [String] = []
        var chunk: [UInt8] = []
        for character in text {
            let bytes = Array(String(character).utf8)
            if chunk.count + bytes.count > 45 {
                words.append("=?UTF-8?B?" + Data(chunk).base64EncodedString() + "?=")
                chunk = []
            }
            chunk += bytes
        }
        if !chunk.isEmpty || words.isEmpty { words.append("=?UTF-8?B?" + Data(chunk).base64EncodedString() + "?=") }
        return words.joined(separator: "\r\n ")
    }

    static func rfc5322Date(_ date: Date) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss '+0000'"
        return formatter.string(from: date)
    }
}
