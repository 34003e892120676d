using System.Net;
using Akka.Actor;
using Akka.Cluster;
using Akka.Cluster.Sharding;
using Akka.Configuration;
using Akka.DistributedData;
using Akka.Event;
using Broker.Actors;
using Broker.Actors.Amqp;
using Broker.Actors.Amqp.Queues;
using Broker.Actors.Amqp.Topology;
using Broker.Actors.Configuration;
using Broker.Actors.Retained;
using Broker.Actors.Routing;
using Broker.Actors.Sessions;
using Broker.AdminHttp;
using Broker.AdminHttp.Sessions;
using Broker.Edge.Amqp;
using Broker.Edge.Mqtt;
using Broker.Edge.Security;
using Broker.AdminHttp.Security;

namespace Broker.Edge.Hosting;

/// <summary>
/// One broker node: the actor system in its cluster, the session shard region, the retained store and
/// the session index, the MQTT listener and the admin API. Used by the executable and, in-process on
/// port 0, by the tests.
/// </summary>
public sealed class BrokerNode : IAsyncDisposable
{
    private readonly MqttListener _mqtt;
    private readonly AmqpListener _amqp;
    private readonly MqttListener? _mqttTls;
    private readonly AmqpListener? _amqpTls;
    private readonly Action _reload;
    private MqttListener? _mqttWs;
    private WebSocketHost? _webSockets;
    private readonly Admission _admission;
    private readonly AdminServer _admin;
    private int _stopped;

    private readonly MemoryAlarm _alarm;

    private BrokerNode(ActorSystem system, BrokerSettings settings, MqttListener mqtt, AmqpListener amqp, AdminServer admin, MemoryAlarm alarm,
        MqttListener? mqttTls, AmqpListener? amqpTls, Action reload, Admission admission)
    {
        _admission = admission;
        _mqttTls = mqttTls;
        _amqpTls = amqpTls;
        _reload = reload;
        _alarm = alarm;
        _amqp = amqp;
        System = system;
        Settings = settings;
        _mqtt = mqtt;
        _admin = admin;
    }

    public ActorSystem System { get; }
    public BrokerSettings Settings { get; }

    /// <summary>Which other node hosts each session, as this node's router sees it (one copy of a message per node).</summary>
    public SessionHosts Hosts { get; private init; } = null!;
    public int MqttPort => _mqtt.Endpoint.Port;
    public int AmqpPort => _amqp.Endpoint.Port;

    /// <summary>The MQTT over WebSocket port (ws://); 0 when it is off.</summary>
    public int WsPort => _webSockets?.Port ?? 0;

    /// <summary>The MQTT over secure WebSocket port (wss://); 0 when it is off.</summary>
    public int WssPort => _webSockets?.TlsPort ?? 0;

    /// <summary>Client connections open on this node, all listeners together.</summary>
    public int Connections => _admission.Connections;

    /// <summary>The MQTT over TLS listener's port; 0 when it is off.</summary>
    public int MqttTlsPort => _mqttTls?.Endpoint.Port ?? 0;

    /// <summary>The AMQP over TLS listener's port; 0 when it is off.</summary>
    public int AmqpTlsPort => _amqpTls?.Endpoint.Port ?? 0;

    /// <summary>The admin API's HTTPS port; 0 when it is off.</summary>
    public int AdminTlsPort => _admin.HttpsPort;

    /// <summary>The admin API's routes and their methods (for the test that the OpenAPI document lists them all).</summary>
    public IReadOnlyList<(string Pattern, IReadOnlyList<string> Methods)> AdminRoutes => _admin.Routes;

    /// <summary>Reads the password, ACL, tokens, certificate and CA files again now (SIGHUP); they are also read again when they change.</summary>
    public void ReloadSecrets() => _reload();
    public int AdminPort => _admin.Port;
    public string AdminUrl => $"http://{Settings.Host}:{AdminPort}";

    /// <summary>Completes when the actor system has terminated (after <see cref="DisposeAsync"/> or a fatal downing).</summary>
    public Task WhenTerminated => System.WhenTerminated;

    public static async Task<BrokerNode> StartAsync(string? overrides = null, CancellationToken ct = default)
    {
        var config = BrokerConfig.Load(overrides);
        var (settings, security) = NodeSettings.Read(config);
        BrokerConfig.PrepareStorage(settings);
        var setup = RemotingTls.AddTo(BootstrapSetup.Create().WithConfig(config).And(BrokerConfig.DataOptions(settings)), config);
        var system = ActorSystem.Create(BrokerConfig.SystemName, setup);
        try
        {
            ThreadPool.GetMinThreads(out var workers, out var io);
            var minWorkers = settings.MinPoolThreads;
            if (minWorkers > workers)
            {
                ThreadPool.SetMinThreads(minWorkers, io);
            }
            var limits = security.Limits;
            if (OpenFileLimit.Raise() is { } files)
            {
                var room = files.After > OpenFileLimit.Reserved ? files.After - OpenFileLimit.Reserved : 0;
                system.Log.Info("open-file limit {0} (was {1}): room for about {2} client connections", files.After, files.Before, room);
                if (limits.MaxConnections == 0)
                {
                    // Refused in the protocol at accept rather than failing accept (and every file the node opens) for want of descriptors.
                    limits = limits with { MaxConnections = (int)Math.Min(room, int.MaxValue) };
                }
            }
            system.Log.Info("at most {0} connections{1}{2}{3}", limits.MaxConnections == 0 ? "(no limit)" : limits.MaxConnections.ToString(global::System.Globalization.CultureInfo.InvariantCulture),
                limits.MaxConnectionsPerListener > 0 ? $", {limits.MaxConnectionsPerListener} per listener" : "",
                limits.ConnectRatePerIp > 0 ? $", {limits.ConnectRatePerIp} connects/s per address" : "",
                limits.FailedLoginsPerIp > 0 ? $", {limits.FailedLoginsPerIp} failed logins per address" : "");
            var admission = new Admission(limits);
            // Loaded before joining, so their serializers exist when the first gossip from other members arrives.
            _ = DistributedData.Get(system);
            _ = ClusterSharding.Get(system);
            var cluster = Cluster.Get(system);
            var up = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            cluster.RegisterOnMemberUp(() => up.TrySetResult());
            if (settings.SeedNodes.Count == 0)
            {
                await cluster.JoinAsync(cluster.SelfAddress, ct).ConfigureAwait(false);
            }
            else
            {
                await cluster.JoinSeedNodesAsync(settings.SeedNodes.Select(s => Address.Parse($"{RemotingTls.Protocol(config)}://{BrokerConfig.SystemName}@{s}")), ct).ConfigureAwait(false);
            }
            await up.Task.WaitAsync(TimeSpan.FromSeconds(60), ct).ConfigureAwait(false);

            var index = system.ActorOf(SessionIndexActor.Props(settings.NodeName, settings.AdminQueryTimeout), SessionQueryService.IndexActorName);
            var trie = new SubscriptionTrie();
            var hosts = new SessionHosts(settings.FanOutPerNode, node => SessionHosts.Resolve(system, node));
            var routes = system.ActorOf(RouteReplicator.Props(trie, hosts), RouteReplicator.Name);
            var topology = new AmqpTopology();
            var catalogStore = new SessionCatalogStore(settings.DbProvider, BrokerConfig.Persistence(settings).Connection, settings.SqliteSynchronous);
            var imported = await catalogStore.InitializeAsync(ct).ConfigureAwait(false);
            if (imported > 0)
            {
                system.Log.Info("session catalog created from the journal: {0} sessions", imported);
            }
            await JournalTables.EnsureAsync(system, TimeSpan.FromSeconds(60), ct).ConfigureAwait(false);
            var catalog = system.ActorOf(SessionCatalog.Props(catalogStore, SessionRecovery.HostOf(cluster.SelfUniqueAddress), BrokerConfig.DatabaseDispatcher(settings)), SessionCatalog.Name);
            var services = new BrokerServices(system, settings, trie, index, routes, catalog, topology, hosts);
            // Before the session region: a peer that learns a session lives here sends to this actor.
            var fanOut = system.ActorOf(NodeFanOutActor.Props(), NodeFanOutActor.Name);
            var sharding = ClusterSharding.Get(system);
            var shardingSettings = ClusterShardingSettings.Create(system).WithRole("broker");
            // AMQP: one queue entity per queue, and one topology owner for the cluster whose changes every
            // node's replica applies. The two regions name each other, so each finds the other by name.
            var ownerForwarder = system.ActorOf(RegionForwarder.Props(TopologyOwner.TypeName), "amqp-topology-owner");
            var queueRegion = await sharding.StartAsync(
                QueueActor.TypeName,
                QueueActor.Props(QueueSettings.From(settings), ownerForwarder, new DeadLetterPublisher(topology, () => services.QueueRegion)),
                shardingSettings,
                new QueueMessageExtractor(),
                sharding.DefaultShardAllocationStrategy(shardingSettings),
                QueueHandOff.Instance).ConfigureAwait(false);
            var ownerRegion = await sharding.StartAsync(
                TopologyOwner.TypeName,
                TopologyOwner.Props(queueRegion, settings.SnapshotEvery),
                shardingSettings.WithRememberEntities(false),
                new TopologyMessageExtractor(),
                sharding.DefaultShardAllocationStrategy(shardingSettings),
                TopologyHandOff.Instance).ConfigureAwait(false);
            system.ActorOf(TopologyReplica.Props(topology, ownerRegion), TopologyReplica.Name);
            await sharding.StartAsync(
                RetainedStoreActor.TypeName,
                Props.Create(() => new RetainedStoreActor(settings.RetainedLimits)),
                shardingSettings.WithRememberEntities(false),
                new RetainedMessageExtractor(),
                sharding.DefaultShardAllocationStrategy(shardingSettings),
                RetainedHandOff.Instance).ConfigureAwait(false);
            // Sessions are not remembered entities: one that has a journal is listed in the session catalog, which is
            // what starts it again after its node is gone; a clean session costs no journal write at all.
            var region = await sharding.StartAsync(
                BrokerServices.SessionTypeName,
                SessionActor.Props(services),
                shardingSettings.WithRememberEntities(false),
                new SessionMessageExtractor(),
                sharding.DefaultShardAllocationStrategy(shardingSettings),
                SessionHandOff.Instance).ConfigureAwait(false);
            fanOut.Tell(new NodeFanOutActor.RegionStarted(region));
            // Listeners open only once this node routes to every session of the cluster: the routes of the
            // sessions other members host, then those of the remembered sessions that restart here.
            // Sessions that are not running are routed from their catalog rows; running ones assert their own routes.
            var fromCatalog = new List<ClientRoutes>();
            var rows = await catalogStore.ReadRoutesAsync((id, data) => fromCatalog.Add(RouteCodec.FromCatalog(id, data)), ct).ConfigureAwait(false);
            await routes.Ask<LoadRoutes>(new LoadRoutes(fromCatalog), TimeSpan.FromSeconds(60), ct).ConfigureAwait(false);
            system.Log.Info("routes of {0} sessions from the session catalog", rows);
            var synced = await routes.Ask<RoutesSynced>(new SyncRoutesFromPeers(TimeSpan.FromSeconds(15)), TimeSpan.FromSeconds(20), ct).ConfigureAwait(false);
            system.Log.Info("routes from {0} of {1} members: {2} clients", synced.Answered, synced.Peers, synced.Clients);
            system.ActorOf(SessionWaker.Props(catalogStore, () => region), SessionWaker.Name);
            var liveHosts = cluster.State.Members.Where(m => m.Status != MemberStatus.Down && m.Status != MemberStatus.Removed)
                .Select(m => SessionRecovery.HostOf(m.UniqueAddress)).Append(SessionRecovery.HostOf(cluster.SelfUniqueAddress)).ToHashSet(StringComparer.Ordinal);
            var recovered = await SessionRecovery.WakeOrphanedSessionsAsync(region, catalogStore, liveHosts, TimeSpan.FromSeconds(120), ct).ConfigureAwait(false);
            await routes.Ask<FlushRoutes>(FlushRoutes.Instance, TimeSpan.FromSeconds(20), ct).ConfigureAwait(false);
            system.Log.Info("{0} sessions recovered", recovered);

            // The AMQP listener opens once this node routes by the cluster's exchanges and bindings.
            if (await Task.WhenAny(topology.Synced, Task.Delay(TimeSpan.FromSeconds(30), ct)).ConfigureAwait(false) != topology.Synced)
            {
                system.Log.Warning("no AMQP topology from its owner within 30 s; the AMQP listener opens anyway and routes once it arrives");
            }
            var alarm = new MemoryAlarm(MemoryAlarm.Watermark(settings.MemoryHighWatermark, settings.MemoryHighWatermarkBytes), system.Log, TimeSpan.FromSeconds(1));
            system.Log.Info("memory high watermark {0} MiB of managed heap", alarm.HighWatermark >> 20);
            var access = new ClientAccess(security, line => system.Log.Warning(line)) { Admission = admission };
            system.Log.Info("MQTT clients: {0}; anonymous clients {1}; topics {2}",
                security.PasswordFile.Length > 0 ? "password file " + security.PasswordFile : security.AuthHttpUrl.Length > 0 ? "HTTP backend " + security.AuthHttpUrl : "no user store",
                access.AllowAnonymous ? "allowed" : "refused", access.HasAcl ? "restricted by " + security.AclFile : "unrestricted");
            var tls = security.HasTls ? new ServerTls(security, system.Log) : null;
            var mqtt = MqttListener.Start(settings.Host, settings.MqttPort, system, services, alarm, access);
            var mqttTls = tls is not null && security.MqttTlsPort != 0
                ? MqttListener.Start(settings.Host, security.MqttTlsPort, system, services, alarm, access, tls)
                : null;
            var mqttWs = security.WsPort != 0 || (tls is not null && security.WssPort != 0) ? MqttListener.ForWebSockets(system, services, alarm, access) : null;
            var amqpServices = new AmqpServices(topology, queueRegion, ownerRegion,
                AmqpUsers.Parse(settings.AmqpUsers, settings.AmqpLoopbackUsers), settings.AmqpFrameMax, settings.AmqpHeartbeat)
            {
                Admission = admission,
                Access = access,
                Permissions = AmqpPermissionSource(security, system, out var reloadPermissions),
            };
            var amqp = AmqpListener.Start(settings.Host, settings.AmqpPort, system, services, amqpServices, alarm);
            var amqpTls = tls is not null && security.AmqpTlsPort != 0
                ? AmqpListener.Start(settings.Host, security.AmqpTlsPort, system, services, amqpServices, alarm, tls)
                : null;
            system.Log.Info("AMQP listener on {0}{1}", amqp.Endpoint, amqpTls is null ? "" : $", over TLS on {amqpTls.Endpoint}");
            system.ActorOf(MemberRemovedWatcher.Props(() =>
            {
                mqtt.Broadcast(RedeliverPending.Instance);
                amqp.Broadcast(RedeliverPending.Instance);
                mqttTls?.Broadcast(RedeliverPending.Instance);
                mqttWs?.Broadcast(RedeliverPending.Instance);
                amqpTls?.Broadcast(RedeliverPending.Instance);
            }), "member-removed");
            system.Log.Info("MQTT listener on {0}{1}", mqtt.Endpoint, mqttTls is null ? "" : $", over TLS on {mqttTls.Endpoint}");
            var webSockets = mqttWs is null ? null : await WebSocketHost.StartAsync(settings.Host, security.WsPort, security.WssPort, tls, mqttWs).ConfigureAwait(false);
            if (webSockets is not null)
            {
                system.Log.Info("MQTT over WebSocket on {0}{1}", webSockets.Port == 0 ? "(no plain port)" : $"ws://{settings.Host}:{webSockets.Port}{WebSocketHost.Path}",
                    webSockets.TlsPort == 0 ? "" : $" and wss://{settings.Host}:{webSockets.TlsPort}{WebSocketHost.Path}");
            }
            var (tokens, reloadTokens) = AdminTokenSource(security, system);
            var admin = await AdminServer.StartAsync(system, settings.Host, settings.AdminPort, settings.AdminQueryTimeout, settings.AdminMaxPageSize,
                new RestingSessions(catalogStore, services.InfoCodec),
                () => cluster.SelfMember.Status == MemberStatus.Up ? (true, "") : (false, $"cluster member status {cluster.SelfMember.Status}"),
                tokens, tls is not null && security.AdminTlsPort != 0 ? security.AdminTlsPort : 0, tls is null ? null : () => tls.Certificate,
                settings.AdminMaxStatStreams, topology).ConfigureAwait(false);
            system.Log.Info("admin HTTP on http://{0}:{1}{2}", settings.Host, admin.Port, admin.HttpsPort == 0 ? "" : $" and https://{settings.Host}:{admin.HttpsPort}");
            system.Log.Info("node {0} ready (remoting {1}, storage {2})", settings.NodeName, cluster.SelfAddress, settings.DbProvider);
            void Reload()
            {
                access.Reload();
                reloadTokens();
                reloadPermissions();
                tls?.Reload();
            }
            return new BrokerNode(system, settings, mqtt, amqp, admin, alarm, mqttTls, amqpTls, Reload, admission) { _mqttWs = mqttWs, _webSockets = webSockets, Hosts = hosts };
        }
        catch
        {
            await system.Terminate().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>The AMQP permissions, read again when the file changes; none configured: every user may do everything.</summary>
    private static Func<AmqpPermissions?> AmqpPermissionSource(SecuritySettings security, ActorSystem system, out Action reload)
    {
        if (security.AmqpPermissionsFile.Length == 0)
        {
            reload = () => { };
            return () => null;
        }
        var file = new ReloadingFile<AmqpPermissions>(security.AmqpPermissionsFile, AmqpPermissions.Load, line => system.Log.Warning(line));
        system.Log.Info("AMQP permissions from {0}", security.AmqpPermissionsFile);
        reload = () => file.Reload(force: true);
        return () => file.Current;
    }

    /// <summary>The admin API's tokens, read again when the file changes; none configured: the API is open.</summary>
    private static (Func<AdminTokens?> Current, Action Reload) AdminTokenSource(SecuritySettings security, ActorSystem system)
    {
        if (security.AdminTokensFile.Length == 0)
        {
            system.Log.Info("admin API open (no tokens file; bound to {0})", security.AdminOpen ? "an address beyond loopback, opened explicitly" : "loopback");
            return (() => null, () => { });
        }
        var file = new ReloadingFile<AdminTokens>(security.AdminTokensFile, AdminTokens.Load, line => system.Log.Warning(line));
        system.Log.Info("admin API tokens from {0} ({1} tokens)", security.AdminTokensFile, file.Current.Count);
        return (() => file.Current, () => file.Reload(force: true));
    }

    /// <summary>
    /// Clean shutdown: stop accepting, close client connections (MQTT 5 clients get DISCONNECT 0x8B),
    /// then leave the cluster through coordinated shutdown so shards hand off and the journal is flushed.
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _stopped, 1) != 0)
        {
            return;
        }
        await Task.WhenAll(_mqtt.StopAsync(TimeSpan.FromSeconds(5)), _amqp.StopAsync(TimeSpan.FromSeconds(5)),
            _mqttWs?.StopAsync(TimeSpan.FromSeconds(5)) ?? Task.CompletedTask,
            _mqttTls?.StopAsync(TimeSpan.FromSeconds(5)) ?? Task.CompletedTask, _amqpTls?.StopAsync(TimeSpan.FromSeconds(5)) ?? Task.CompletedTask).ConfigureAwait(false);
        if (_webSockets is not null)
        {
            await _webSockets.DisposeAsync().ConfigureAwait(false);
        }
        _alarm.Dispose();
        await _admin.DisposeAsync().ConfigureAwait(false);
        await CoordinatedShutdown.Get(System).Run(CoordinatedShutdown.ClrExitReason.Instance).ConfigureAwait(false);
        await System.WhenTerminated.ConfigureAwait(false);
    }
}
