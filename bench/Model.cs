namespace Broker.Bench;

/// <summary>One reported number of a scenario; <see cref="HigherIsBetter"/> says which way is good.</summary>
internal sealed record MetricDef(string Key, string Label, bool HigherIsBetter);

/// <summary>The outcome of one run of one scenario against one broker.</summary>
internal sealed class RunResult
{
    /// <summary>The reported numbers, keyed by <see cref="MetricDef.Key"/>.</summary>
    public Dictionary<string, double> Metrics { get; set; } = [];
    /// <summary>Further numbers for the record (publish rate, RSS, window, ...).</summary>
    public Dictionary<string, double> Extra { get; set; } = [];
    /// <summary>Messages (or connections) the scenario expected to see arrive.</summary>
    public long Expected { get; set; }
    /// <summary>Distinct messages (or connections) that did arrive.</summary>
    public long Received { get; set; }
    /// <summary>Messages that should have arrived and did not: for QoS 1 the acknowledged ones only.</summary>
    public long Lost { get; set; }
    public long Duplicates { get; set; }
    /// <summary>Publishes that failed or were not acknowledged (QoS 1), or connections refused.</summary>
    public long Failed { get; set; }
    public bool TimedOut { get; set; }
    public string? Error { get; set; }
}

internal sealed class ScenarioResult
{
    public string Id { get; set; } = "";
    public string Title { get; set; } = "";
    public List<MetricDef> Metrics { get; set; } = [];
    public List<RunResult> Runs { get; set; } = [];
}

internal sealed class BrokerResults
{
    public string Name { get; set; } = "";
    public string Host { get; set; } = "";
    public int Port { get; set; }
    public int Pid { get; set; }
    public DateTimeOffset Started { get; set; }
    public BenchOptions Options { get; set; } = new();
    public List<ScenarioResult> Scenarios { get; set; } = [];
}
