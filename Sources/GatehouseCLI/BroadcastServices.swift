import GatehouseAPI
import GatehouseCore

extension Bootstrap {
    /// Playout and monitor for `serve`: wired in once those modules land.
    func broadcastServices(kek: KeyEncryptionKey) async throws -> [any GatehouseService] { [] }
}
