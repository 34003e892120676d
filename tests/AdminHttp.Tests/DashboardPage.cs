using OpenQA.Selenium;
using OpenQA.Selenium.Chrome;
using Xunit.Abstractions;

namespace Broker.Tests.Shared;

/// <summary>
/// Driving the web dashboard in Debian's headless Chromium (scripts/test-tools.sh installs it): the browser, and reading
/// and waiting on what the page shows. A visible error on the page fails every wait.
/// </summary>
public static class DashboardPage
{
    public static readonly TimeSpan Patience = TimeSpan.FromSeconds(20);

    public static (string View, string State) View(IWebDriver driver)
    {
        var view = driver.FindElement(By.Id("view"));
        return (view.GetAttribute("data-view") ?? "", view.GetAttribute("data-state") ?? "");
    }

    public static List<string> Rows(IWebDriver driver) =>
        [.. driver.FindElements(By.CssSelector("#view tr[data-client-id]")).Select(r => r.GetAttribute("data-client-id") ?? "")];

    public static string? Text(IWebDriver driver, string css) => driver.FindElements(By.CssSelector(css)).FirstOrDefault()?.Text;

    public static string? Attribute(IWebDriver driver, string css, string name) => driver.FindElements(By.CssSelector(css)).FirstOrDefault()?.GetAttribute(name);

    /// <summary>A view with rows: "no data" where data exists fails here, as does an error.</summary>
    public static Task UntilReady(IWebDriver driver, string view) =>
        Until(driver, () => View(driver) == (view, "ready"), $"the {view} view with data (now {View(driver)})");

    /// <summary>Polls the page until <paramref name="condition"/> holds; a visible error fails at once.</summary>
    public static Task Until(IWebDriver driver, Func<bool> condition, string what, bool checkErrors = true) =>
        Wait.UntilAsync(() =>
        {
            try
            {
                if (checkErrors)
                {
                    AssertNoError(driver);
                }
                return condition();
            }
            catch (Exception e) when (e is StaleElementReferenceException or NoSuchElementException or UnhandledAlertException)
            {
                return false;
            }
        }, Patience, what);

    public static void AssertNoError(IWebDriver driver)
    {
        var errors = driver.FindElements(By.CssSelector(".error")).Where(e => e.Displayed).Select(e => e.Text).ToList();
        Assert.True(errors.Count == 0, "the page shows an error: " + string.Join(" | ", errors));
    }

    /// <summary>The page's script threw nothing (failed requests are the API's answers, checked on the page).</summary>
    public static void AssertNoScriptErrors(IWebDriver driver)
    {
        var errors = driver.Manage().Logs.GetLog(LogType.Browser)
            .Where(e => e.Level >= LogLevel.Severe && !e.Message.Contains("Failed to load resource", StringComparison.Ordinal))
            .Select(e => e.Message).ToList();
        Assert.True(errors.Count == 0, "script errors: " + string.Join(" | ", errors));
    }

    public static void Shot(IWebDriver driver, string folder, string name, ITestOutputHelper output)
    {
        // A value the page failed to fill in shows up as text.
        Assert.DoesNotMatch(@"\b(null|undefined|NaN)\b", driver.FindElement(By.Id("view")).Text);
        var path = Path.Combine(folder, name + ".png");
        ((ITakesScreenshot)driver).GetScreenshot().SaveAsFile(path);
        output.WriteLine("screenshot " + path);
    }

    /// <summary>Debian's chromium through Debian's chromedriver; Selenium Manager is kept offline (nothing is downloaded).</summary>
    public sealed class Browser : IDisposable
    {
        private readonly ChromeDriverService _service;

        private Browser(ChromeDriverService service, ChromeDriver driver)
        {
            _service = service;
            Driver = driver;
        }

        public ChromeDriver Driver { get; }

        public static Browser Start()
        {
            Environment.SetEnvironmentVariable("SE_OFFLINE", "true");
            Assert.True(File.Exists("/usr/bin/chromium") && File.Exists("/usr/bin/chromedriver"),
                "chromium and chromedriver are missing: run scripts/test-tools.sh");
            var service = ChromeDriverService.CreateDefaultService("/usr/bin", "chromedriver");
            service.SuppressInitialDiagnosticInformation = true;
            service.HideCommandPromptWindow = true;
            var options = new ChromeOptions { BinaryLocation = "/usr/bin/chromium" };
            options.SetLoggingPreference(LogType.Browser, LogLevel.All);
            options.AddArguments("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900");
            try
            {
                return new Browser(service, new ChromeDriver(service, options, TimeSpan.FromSeconds(60)));
            }
            catch
            {
                service.Dispose();
                throw;
            }
        }

        public void Dispose()
        {
            try
            {
                Driver.Quit();
            }
            finally
            {
                Driver.Dispose();
                _service.Dispose();
            }
        }
    }
}
