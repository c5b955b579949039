import ArgumentParser
import Foundation
import Logging
import OutpostOperations

/// Process-wide set-up shared by the long-running roles.
enum RoleSupport {
    /// swift-log to stderr with key=value metadata, at `level`.
    static func bootstrapLogging(level: Logger.Level) {
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
    }

    static func readConfigurationFile(_ path: String) throws -> String {
        do {
            return try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw ValidationError("cannot read configuration file \(path): \(error.localizedDescription)")
        }
    }

    static func endpoint(_ text: String, flag: String) throws -> HostPort {
        guard let endpoint = HostPort(parsing: text) else { throw ValidationError("\(flag) expects HOST:PORT, got '\(text)'") }
        return endpoint
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}
