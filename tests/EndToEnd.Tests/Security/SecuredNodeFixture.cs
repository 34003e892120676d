using System.Diagnostics;
using System.Net;
using Broker.AdminHttp.Security;
using Broker.Edge.Security;
using Broker.Tests.Shared;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Broker.EndToEnd.Tests.Security;

/// <summary>
/// One node with every security file an operator would configure: a password file (one user made by Debian's
/// mosquitto_passwd, one by the node's own passwd command), an ACL file, an HTTP authentication backend (a real HTTP
/// server in this process) and admin tokens.
/// </summary>
public sealed class SecuredNodeFixture : IAsyncLifetime
{
    public const string Acl = """
        user alice
        topic readwrite sensors/#
        topic deny sensors/secret
        user writer
        topic write sensors/#
        topic write wills/writer
        user carol
        topic readwrite carol/#
        pattern readwrite clients/%c/#
        """;

    private readonly string _folder = Path.Combine(Path.GetTempPath(), "broker-security-" + Guid.NewGuid().ToString("N"));
    private WebApplication? _backend;

    public TestNode Node { get; private set; } = null!;

    public string Folder => _folder;

    public string PasswordFile => Path.Combine(_folder, "passwords");

    public string AdminSecret { get; private set; } = "";

    public string ViewerSecret { get; private set; } = "";

    /// <summary>Logins the HTTP backend was asked about.</summary>
    public int BackendCalls;

    /// <summary>While false the backend answers 503, as a user store that is down.</summary>
    public volatile bool BackendUp = true;

    public async Task InitializeAsync()
    {
        Directory.CreateDirectory(_folder);
        await Tools.RunAsync("mosquitto_passwd", ["-c", "-b", PasswordFile, "alice", "alice-pw"]);
        Edge.Security.PasswordFile.Update(PasswordFile, "writer", "writer-pw");
        var acl = Path.Combine(_folder, "acl");
        await File.WriteAllTextAsync(acl, Acl);
        var tokens = Path.Combine(_folder, "tokens");
        AdminSecret = AdminTokens.Add(tokens, "ops", AdminRole.Admin);
        ViewerSecret = AdminTokens.Add(tokens, "look", AdminRole.Viewer);
        var backendUrl = await StartBackendAsync();
        Node = await TestNode.StartAsync($$"""
            broker.mqtt.password-file = "{{PasswordFile}}"
            broker.mqtt.acl-file = "{{acl}}"
            broker.auth-http.url = "{{backendUrl}}"
            broker.auth-http.timeout = 2s
            broker.admin.tokens-file = "{{tokens}}"
            # Two deliveries in flight per client: a delivery the ACL holds back must be answered in the client's
            # place, or the third message would never come.
            broker.mqtt.max-inflight = 2
            """);
    }

    /// <summary>The operator's user store: carol / carol-pw, and nobody else.</summary>
    private async Task<string> StartBackendAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(o => o.Listen(IPAddress.Loopback, 0));
        _backend = builder.Build();
        _backend.MapPost("/auth", async (HttpContext ctx) =>
        {
            Interlocked.Increment(ref BackendCalls);
            using var body = await System.Text.Json.JsonDocument.ParseAsync(ctx.Request.Body);
            var root = body.RootElement;
            if (!BackendUp)
            {
                return Results.StatusCode(503);
            }
            var ok = root.GetProperty("username").GetString() == "carol" && root.GetProperty("password").GetString() == "carol-pw"
                && root.GetProperty("client_id").GetString()!.Length > 0 && root.GetProperty("peer").GetString()!.StartsWith("127.0.0.1:", StringComparison.Ordinal);
            return ok ? Results.Ok() : Results.StatusCode(403);
        });
        await _backend.StartAsync();
        var address = _backend.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        return address.TrimEnd('/') + "/auth";
    }

    public async Task DisposeAsync()
    {
        await Node.DisposeAsync();
        Node.DeleteData();
        if (_backend is not null)
        {
            await _backend.DisposeAsync();
        }
        Directory.Delete(_folder, recursive: true);
    }
}

/// <summary>The mosquitto command-line tools, run as a user would; each process is stopped by its id if it outlives its deadline.</summary>
public static class Tools
{
    public static async Task<(int ExitCode, string Output)> RunAsync(string file, IEnumerable<string> args, TimeSpan? timeout = null)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }
        Process process;
        try
        {
            process = Process.Start(psi)!;
        }
        catch (System.ComponentModel.Win32Exception ex)
        {
            throw new InvalidOperationException($"{file} is not installed: scripts/test.sh installs Debian's mosquitto and mosquitto-clients ({ex.Message})", ex);
        }
        using (process)
        {
            var stdout = process.StandardOutput.ReadToEndAsync();
            var stderr = process.StandardError.ReadToEndAsync();
            using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(20));
            try
            {
                await process.WaitForExitAsync(cts.Token);
            }
            catch (OperationCanceledException)
            {
                process.Kill(entireProcessTree: true);
                await process.WaitForExitAsync();
                throw new TimeoutException($"{file} {string.Join(' ', args)} did not finish in time; it was stopped. Output: {await stdout}{await stderr}");
            }
            return (process.ExitCode, await stdout + await stderr);
        }
    }
}
