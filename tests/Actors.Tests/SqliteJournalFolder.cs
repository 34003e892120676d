using Akka.Configuration;
using Microsoft.Data.Sqlite;

namespace Broker.Actors.Tests;

/// <summary>
/// A fresh folder with a real SQLite file, and the configuration of an actor system journaling to it: the
/// persistence section as src/Edge/Hosting/BrokerConfig.cs derives it for sqlite, plus cluster.hocon's serializer
/// binding. Dispose releases the pooled connections and deletes the folder.
/// </summary>
public sealed class SqliteJournalFolder : IDisposable
{
    public SqliteJournalFolder(string prefix)
    {
        Dir = Path.Combine(Path.GetTempPath(), prefix + "-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Dir);
        DbFile = Path.Combine(Dir, "broker.db");
        ConnectionString = new SqliteConnectionStringBuilder { DataSource = DbFile, DefaultTimeout = 30, Pooling = true }.ToString();
    }

    public string Dir { get; }

    public string DbFile { get; }

    public string ConnectionString { get; }

    /// <param name="overrides">HOCON that comes last and so wins, e.g. <c>akka.actor.provider = cluster</c>.</param>
    public Config SystemConfig(string overrides = "") => ConfigurationFactory.ParseString($$"""
        akka.loglevel = WARNING
        akka.actor.provider = local
        akka.actor.serializers.broker = "Broker.Actors.Serialization.BrokerSerializer, Broker.Actors"
        akka.actor.serialization-bindings { "Broker.Actors.Messages.IBrokerSerializable, Broker.Actors" = broker }
        akka.persistence {
          journal {
            plugin = "akka.persistence.journal.sql"
            sql {
              class = "Akka.Persistence.Sql.Journal.SqlWriteJournal, Akka.Persistence.Sql"
              provider-name = "SQLite.MS"
              connection-string = "{{ConnectionString}}"
              table-mapping = sqlite
              auto-initialize = on
            }
          }
          snapshot-store {
            plugin = "akka.persistence.snapshot-store.sql"
            sql {
              class = "Akka.Persistence.Sql.Snapshot.SqlSnapshotStore, Akka.Persistence.Sql"
              provider-name = "SQLite.MS"
              connection-string = "{{ConnectionString}}"
              table-mapping = sqlite
              auto-initialize = on
            }
          }
        }
        {{overrides}}
        """);

    public void Dispose()
    {
        SqliteConnection.ClearAllPools();
        try
        {
            Directory.Delete(Dir, recursive: true);
        }
        catch (IOException)
        {
            // A file still open by a system that is shutting down; it is in the temp folder.
        }
    }
}
