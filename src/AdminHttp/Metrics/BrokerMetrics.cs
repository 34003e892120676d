using Akka.Actor;
using Akka.Cluster;
using Broker.Actors.Messages;
using Prometheus;

namespace Broker.AdminHttp.Metrics;

/// <summary>
/// <c>GET /metrics</c>: this node's counts in Prometheus's text exposition format, written by prometheus-net. The
/// broker's own counters stay lock-free on the hot path (<see cref="BrokerCounters"/>); they are copied into the
/// registry only when Prometheus scrapes. Names follow Prometheus's conventions: <c>broker_</c> prefix, <c>_total</c>
/// for counters, bytes and seconds as units. One registry per node (not prometheus-net's static one), so nodes sharing
/// a process do not share metrics; process CPU, memory and GC come from prometheus-net's .NET collector.
/// </summary>
public sealed class BrokerMetrics : IDisposable
{
    private static readonly string[] Protocols = ["mqtt", "amqp"];
    private static readonly string[] MemberStatuses = ["joining", "weaklyup", "up", "leaving", "exiting", "down", "removed"];

    private readonly CollectorRegistry _registry = Prometheus.Metrics.NewCustomRegistry();
    private readonly Action<double> _journalObserver;

    public BrokerMetrics(ActorSystem system)
    {
        var cluster = Cluster.Get(system);
        var f = Prometheus.Metrics.WithCustomRegistry(_registry);
        DotNetStats.Register(_registry);

        var connections = f.CreateGauge("broker_connections", "Client connections open now.", "protocol");
        var opened = f.CreateCounter("broker_connections_opened_total", "Client connections accepted.", "protocol");
        var closed = f.CreateCounter("broker_connections_closed_total", "Client connections ended, by why.", "protocol", "reason");
        var refused = f.CreateCounter("broker_connections_refused_total", "Connections refused at accept by the connection limits.");
        var received = f.CreateCounter("broker_messages_received_total", "Messages published by clients (AMQP counts as QoS 0).", "protocol", "qos");
        var sent = f.CreateCounter("broker_messages_sent_total", "Messages delivered to clients (AMQP counts as QoS 0).", "protocol", "qos");
        var bytesIn = f.CreateCounter("broker_received_bytes_total", "Bytes read from client connections.", "protocol");
        var bytesOut = f.CreateCounter("broker_sent_bytes_total", "Bytes written to client connections.", "protocol");
        var protocolErrors = f.CreateCounter("broker_protocol_errors_total", "Connections closed for breaking the protocol.", "protocol");
        var denied = f.CreateCounter("broker_denials_total", "Logins (auth) and operations (authz) refused.", "kind");
        var failures = f.CreateCounter("broker_failures_total", "Authentication backend calls and TLS handshakes that failed.", "kind");
        var dropped = f.CreateCounter("broker_dropped_messages_total", "Messages that could not be delivered, by reason (each also logged).", "reason");
        var sessions = f.CreateGauge("broker_sessions", "Sessions held in memory by this node, connected or not.", "state");
        var sessionMessages = f.CreateGauge("broker_session_messages", "Messages the sessions in memory hold: in flight to clients, or queued for them.", "state");
        var queueMessages = f.CreateGauge("broker_amqp_queue_messages", "Messages in the AMQP queues this node runs: ready, or delivered and not acknowledged.", "state");
        var retainedCount = f.CreateGauge("broker_retained_messages", "Retained messages in the store, on the node that runs it (0 elsewhere).");
        var confirms = f.CreateCounter("broker_amqp_confirms_total", "AMQP publishes answered to publishers in confirm mode, by answer.", "answer");
        var subscriptions = f.CreateGauge("broker_subscriptions", "Subscriptions of the sessions this node holds in memory.");
        var members = f.CreateGauge("broker_cluster_members", "Cluster members as this node sees them, by status.", "status");
        var unreachable = f.CreateGauge("broker_cluster_unreachable_members", "Members this node cannot reach now.");
        var journal = f.CreateHistogram("broker_journal_write_seconds", "Durations of the session journal's write transactions (a batch of sessions' events).",
            new HistogramConfiguration { Buckets = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5] });
        _journalObserver = journal.Observe;
        BrokerCounters.JournalWriteObserved += _journalObserver;

        _registry.AddBeforeCollectCallback(() =>
        {
            var c = BrokerCounters.Snapshot();
            foreach (var p in Protocols)
            {
                connections.WithLabels(p).Set(c[$"{p}.connections.current"]);
                opened.WithLabels(p).IncTo(c[$"{p}.connections.total"]);
                foreach (var reason in ProtocolCounters.CloseReasonNames)
                {
                    closed.WithLabels(p, reason).IncTo(c[$"{p}.closed.{reason}"]);
                }
                for (var qos = 0; qos < (p == "mqtt" ? 3 : 1); qos++)
                {
                    var q = qos.ToString(System.Globalization.CultureInfo.InvariantCulture);
                    received.WithLabels(p, q).IncTo(c[$"{p}.messages.received.qos{q}"]);
                    sent.WithLabels(p, q).IncTo(c[$"{p}.messages.sent.qos{q}"]);
                }
                bytesIn.WithLabels(p).IncTo(c[$"{p}.bytes.received"]);
                bytesOut.WithLabels(p).IncTo(c[$"{p}.bytes.sent"]);
                protocolErrors.WithLabels(p).IncTo(c[$"{p}.errors.protocol"]);
            }
            refused.IncTo(c["errors.connections_refused"]);
            denied.WithLabels("auth").IncTo(c["errors.auth"]);
            denied.WithLabels("authz").IncTo(c["errors.authz"]);
            failures.WithLabels("auth_backend").IncTo(c["errors.auth_backend"]);
            failures.WithLabels("tls_handshake").IncTo(c["errors.tls_handshake"]);
            dropped.WithLabels("qos0_backlog").IncTo(c["dropped.qos0_backlog"]);
            dropped.WithLabels("qos0_slow_client").IncTo(c["dropped.qos0_slow_client"]);
            dropped.WithLabels("publish_given_up").IncTo(c["dropped.publishes_given_up"]);
            dropped.WithLabels("retained_limit").IncTo(c["dropped.retained_refused"]);
            var connected = BrokerCounters.SessionsConnected.Value;
            sessions.WithLabels("connected").Set(connected);
            sessions.WithLabels("disconnected").Set(Math.Max(0, BrokerCounters.SessionsInMemory.Value - connected));

            subscriptions.Set(BrokerCounters.Subscriptions.Value);
            queueMessages.WithLabels("ready").Set(BrokerCounters.QueueReady.Value);
            queueMessages.WithLabels("unacked").Set(BrokerCounters.QueueUnacked.Value);
            retainedCount.Set(BrokerCounters.Retained.Value);
            confirms.WithLabels("ack").IncTo(BrokerCounters.AmqpConfirms.Value);
            confirms.WithLabels("nack").IncTo(BrokerCounters.AmqpNacks.Value);
            sessionMessages.WithLabels("inflight").Set(BrokerCounters.SessionInflight.Value);
            sessionMessages.WithLabels("queued").Set(BrokerCounters.SessionQueued.Value);

            var state = cluster.State;
            foreach (var status in MemberStatuses)
            {
                members.WithLabels(status).Set(state.Members.Count(m => m.Status.ToString().Equals(status, StringComparison.OrdinalIgnoreCase)));
            }
            unreachable.Set(state.Unreachable.Count);
        });
    }

    public void Dispose() => BrokerCounters.JournalWriteObserved -= _journalObserver;

    /// <summary>Writes the exposition of every metric, as of now.</summary>
    public Task WriteAsync(Stream output, CancellationToken ct) => _registry.CollectAndExportAsTextAsync(output, ct);
}
