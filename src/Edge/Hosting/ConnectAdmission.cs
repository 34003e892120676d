namespace Broker.Edge.Hosting;

/// <summary>
/// Admission of client CONNECTs on one node. At most <c>capacity</c> connections at a time have sent their CONNECT to a
/// session and wait for its answer; the others wait here in arrival order, their sockets not read further, and go on
/// as answers come. A reconnect storm (thousands of clients of a failed node arriving at once) then costs a queue, not
/// thousands of session starts, catalog lookups and CONNECT repeats competing for the same two cores, each slower than
/// the client's connect timeout: a client waits its turn instead of timing out and coming back. Thread-safe; a ticket
/// is left exactly once whatever happens (answer, close, actor stop), so no slot can leak.
/// </summary>
public sealed class ConnectAdmission
{
    private readonly object _gate = new();
    private readonly Queue<Ticket> _waiting = new();
    private readonly int _capacity;
    private int _admitted;
    private int _waitingLive;
    private long _queuedTotal;

    public ConnectAdmission(int capacity)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        _capacity = capacity;
    }

    /// <summary>CONNECTs sent to their sessions and not answered yet.</summary>
    public int InFlight
    {
        get
        {
            lock (_gate)
            {
                return _admitted;
            }
        }
    }

    /// <summary>Connections waiting for a slot now.</summary>
    public int Waiting
    {
        get
        {
            lock (_gate)
            {
                return _waitingLive;
            }
        }
    }

    /// <summary>Connections that had to wait for a slot since the node started.</summary>
    public long QueuedTotal => Interlocked.Read(ref _queuedTotal);

    /// <summary>
    /// A slot for one CONNECT: admitted at once when one is free (<see cref="Ticket.IsAdmitted"/>), else queued, and
    /// <paramref name="onAdmitted"/> runs (on the thread that freed the slot) when its turn comes.
    /// </summary>
    public Ticket Enter(Action onAdmitted)
    {
        var ticket = new Ticket(this, onAdmitted);
        lock (_gate)
        {
            if (_admitted < _capacity && _waitingLive == 0)
            {
                _admitted++;
                ticket.State = TicketState.Admitted;
                return ticket;
            }
            ticket.State = TicketState.Waiting;
            _waiting.Enqueue(ticket);
            _waitingLive++;
        }
        Interlocked.Increment(ref _queuedTotal);
        Broker.Actors.Messages.BrokerCounters.ConnectsQueued.Increment();
        return ticket;
    }

    private void Leave(Ticket ticket)
    {
        Ticket? next = null;
        lock (_gate)
        {
            switch (ticket.State)
            {
                case TicketState.Waiting:
                    // Left in the queue and skipped when its turn comes; the queue is compacted when such tickets pile up.
                    ticket.State = TicketState.Left;
                    _waitingLive--;
                    if (_waiting.Count > 1024 && _waiting.Count > 2 * _waitingLive)
                    {
                        var live = _waiting.Where(t => t.State == TicketState.Waiting).ToList();
                        _waiting.Clear();
                        foreach (var t in live)
                        {
                            _waiting.Enqueue(t);
                        }
                    }
                    return;
                case TicketState.Admitted:
                    ticket.State = TicketState.Left;
                    while (_waiting.TryDequeue(out var candidate))
                    {
                        if (candidate.State == TicketState.Waiting)
                        {
                            candidate.State = TicketState.Admitted;
                            _waitingLive--;
                            next = candidate;
                            break;
                        }
                    }
                    if (next is null)
                    {
                        _admitted--;
                    }
                    break;
                default:
                    return;
            }
        }
        // The slot passes to the next connection without being counted free in between.
        next?.OnAdmitted();
    }

    internal enum TicketState
    {
        Waiting,
        Admitted,
        Left,
    }

    /// <summary>One connection's place: admitted or waiting, until <see cref="Leave"/>.</summary>
    public sealed class Ticket
    {
        private readonly ConnectAdmission _owner;
        private readonly Action _onAdmitted;

        internal Ticket(ConnectAdmission owner, Action onAdmitted)
        {
            _owner = owner;
            _onAdmitted = onAdmitted;
        }

        internal TicketState State { get; set; }

        /// <summary>Whether this connection holds a slot now (read it on the thread that entered, or after the callback).</summary>
        public bool IsAdmitted
        {
            get
            {
                lock (_owner._gate)
                {
                    return State == TicketState.Admitted;
                }
            }
        }

        internal void OnAdmitted() => _onAdmitted();

        /// <summary>Gives the slot up (the CONNECT was answered, or the connection ended) or leaves the queue. Idempotent.</summary>
        public void Leave() => _owner.Leave(this);
    }
}
