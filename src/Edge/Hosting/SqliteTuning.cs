using System.Data.Common;
using Akka.Persistence.Sql.Config;
using LinqToDB;
using LinqToDB.Interceptors;

namespace Broker.Edge.Hosting;

/// <summary>
/// SQLite journal connections run with <c>PRAGMA synchronous</c> set from configuration. The file is
/// in write-ahead-log mode, where NORMAL makes each commit durable against a crash of the broker process
/// (SIGKILL included) without an fsync per commit; FULL also survives power loss of the machine.
/// </summary>
internal sealed class SqliteTuning(string synchronous) : ConnectionInterceptor
{
    public static DataOptionsSetup Setup(string connectionString, string synchronous) =>
        new(new DataOptions().UseConnectionString(ProviderName.SQLiteMS, connectionString).UseInterceptor(new SqliteTuning(synchronous)));

    public override void ConnectionOpened(ConnectionEventData eventData, DbConnection connection) => Apply(connection);

    public override Task ConnectionOpenedAsync(ConnectionEventData eventData, DbConnection connection, CancellationToken cancellationToken)
    {
        Apply(connection);
        return Task.CompletedTask;
    }

    private void Apply(DbConnection connection)
    {
        using var cmd = connection.CreateCommand();
        cmd.CommandText = $"PRAGMA synchronous={synchronous};";
        cmd.ExecuteNonQuery();
    }
}
