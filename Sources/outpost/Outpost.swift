// The `outpost` executable: argument parsing and wiring only. Each role is a subcommand.
import ArgumentParser

@main
struct Outpost: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "outpost",
        abstract: "IoT telemetry ingestion: edge gateway, durable log, Kafka-compatible brokers.",
        subcommands: [GatewayCommand.self, BrokerCommand.self, ParseCommand.self, LogCommand.self, SimulateCommand.self, VerifyCommand.self]
    )
}
