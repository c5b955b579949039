import Foundation
import OutpostOperations

/// The users SASL/PLAIN accepts and the password check. Immutable once built; shared by every connection.
struct SASLCredentials: Sendable {
    private let passwords: [String: [UInt8]]
    /// Compared against when the user is unknown, so an unknown name costs what a wrong password costs.
    private static let decoy = [UInt8](repeating: 0x5A, count: 32)

    init(users: [String: SASLPassword]) {
        passwords = users.mapValues(\.bytes)
    }

    var userCount: Int { passwords.count }

    /// True when `password` is `username`'s. The comparison takes time that depends on the length of the
    /// offered password only — never on how much of it matches, nor on the stored password's length.
    func verify(username: String, password: some Collection<UInt8>) -> Bool {
        guard let expected = passwords[username] else {
            _ = Self.constantTimeEquals(Self.decoy, password)
            return false
        }
        return Self.constantTimeEquals(expected, password)
    }

    /// Compares every offered byte (cycling through `expected`) and folds the differences together with no
    /// early exit. `expected` is never empty (configured passwords are validated non-empty).
    static func constantTimeEquals(_ expected: [UInt8], _ offered: some Collection<UInt8>) -> Bool {
        precondition(!expected.isEmpty, "a stored password is never empty")
        var difference = UInt(bitPattern: expected.count ^ offered.count)
        var index = 0
        for byte in offered {
            difference |= UInt(expected[index % expected.count] ^ byte)
            index += 1
        }
        return difference == 0
    }

    /// The configured users plus those of the users file, read now (at start-up: an unreadable or invalid
    /// file stops the broker with the reason).
    static func load(_ configuration: BrokerSASLConfiguration) throws(BrokerError) -> SASLCredentials {
        var users = configuration.users
        if let path = configuration.usersFile {
            let text: String
            do {
                text = try String(contentsOfFile: path, encoding: .utf8)
            } catch {
                throw .configuration("sasl.users_file \(path): cannot read it (\(TLSFiles.reason(error)))")
            }
            let fromFile: [String: SASLPassword]
            do {
                fromFile = try BrokerSASLConfiguration.parseUsers(yaml: text, source: "sasl.users_file \(path)")
            } catch {
                throw .configuration("\(error)")
            }
            for (name, password) in fromFile {
                guard users[name] == nil else { throw .configuration("sasl.users_file \(path): user '\(name)' is also in sasl.users") }
                users[name] = password
            }
        }
        guard !users.isEmpty else { throw .configuration("sasl: no users configured (sasl.users or sasl.users_file)") }
        return SASLCredentials(users: users)
    }
}
