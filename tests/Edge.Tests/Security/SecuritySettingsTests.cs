using Akka.Configuration;
using Broker.Edge.Hosting;
using Broker.Edge.Security;
using Broker.Edge.Tests.Hosting;

namespace Broker.Edge.Tests.Security;

[Collection(EnvironmentCollection.Name)]
public class SecuritySettingsTests
{
    private static SecuritySettings Load(string hocon, params (string, string?)[] env)
    {
        using var scope = new EnvironmentScope(env);
        return SecuritySettings.From(BrokerConfig.Load(hocon));
    }

    [Fact]
    public void On_loopback_with_nothing_configured_anonymous_clients_are_allowed()
    {
        var s = Load("");
        Assert.True(s.AnonymousAllowed);
        Assert.False(s.HasUserStore);
        Assert.True(Load("broker.host = localhost").AnonymousAllowed);
        Assert.True(Load("broker.host = \"::1\"").AnonymousAllowed);
    }

    [Fact]
    public void A_user_store_refuses_anonymous_clients_unless_they_are_allowed_explicitly()
    {
        Assert.False(Load("", ("BROKER_MQTT_PASSWORD_FILE", "/etc/pw")).AnonymousAllowed);
        Assert.False(Load("", ("BROKER_AUTH_HTTP_URL", "http://127.0.0.1:9/auth")).AnonymousAllowed);
        Assert.True(Load("", ("BROKER_MQTT_PASSWORD_FILE", "/etc/pw"), ("BROKER_ALLOW_ANONYMOUS", "true")).AnonymousAllowed);
        Assert.False(Load("", ("BROKER_ALLOW_ANONYMOUS", "false")).AnonymousAllowed);
    }

    [Fact]
    public void Beyond_loopback_without_authentication_the_node_refuses_to_start_and_says_what_to_set()
    {
        var mqtt = Assert.Throws<ConfigurationException>(() => Load("broker.admin.open = true", ("BROKER_HOST", "0.0.0.0")));
        Assert.Contains("BROKER_MQTT_PASSWORD_FILE", mqtt.Message, StringComparison.Ordinal);
        Assert.Contains("BROKER_ALLOW_ANONYMOUS=true", mqtt.Message, StringComparison.Ordinal);

        var admin = Assert.Throws<ConfigurationException>(() => Load("", ("BROKER_HOST", "10.1.2.3"), ("BROKER_MQTT_PASSWORD_FILE", "/etc/pw")));
        Assert.Contains("BROKER_ADMIN_TOKENS_FILE", admin.Message, StringComparison.Ordinal);

        // Either made explicit, the node starts.
        Assert.True(Load("", ("BROKER_HOST", "0.0.0.0"), ("BROKER_ALLOW_ANONYMOUS", "true"), ("BROKER_ADMIN_OPEN", "true")).AnonymousAllowed);
        var secured = Load("", ("BROKER_HOST", "10.1.2.3"), ("BROKER_MQTT_PASSWORD_FILE", "/etc/pw"), ("BROKER_ADMIN_TOKENS_FILE", "/etc/tokens"));
        Assert.False(secured.AnonymousAllowed);
        Assert.Equal("/etc/tokens", secured.AdminTokensFile);
    }

    [Theory]
    [InlineData("broker.allow-anonymous = maybe")]
    [InlineData("broker.auth-http.url = \"ftp://x/\"")]
    [InlineData("broker.auth-http.url = \"not a url\"")]
    [InlineData("broker.auth-http.timeout = 0s")]
    [InlineData("broker.auth-http.cache-entries = 0")]
    public void Wrong_values_are_refused(string hocon) =>
        Assert.Throws<ConfigurationException>(() => Load(hocon));

    [Fact]
    public void Every_security_variable_overrides_its_key()
    {
        var s = Load("",
            ("BROKER_MQTT_PASSWORD_FILE", "/p"), ("BROKER_MQTT_ACL_FILE", "/a"), ("BROKER_AUTH_HTTP_URL", "https://auth.example/check"),
            ("BROKER_ADMIN_TOKENS_FILE", "/t"), ("BROKER_ADMIN_OPEN", "true"), ("BROKER_ALLOW_ANONYMOUS", "true"));
        Assert.Equal(("/p", "/a", "https://auth.example/check", "/t", true, true),
            (s.PasswordFile, s.AclFile, s.AuthHttpUrl, s.AdminTokensFile, s.AdminOpen, s.AnonymousAllowed));
    }
}
