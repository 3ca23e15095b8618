#!/usr/bin/env python3
"""Drives headless Chromium (Debian's chromium and chromedriver) through Crowsnest's web pages with selenium.

    browser-check.py --base http://127.0.0.1:8080 --username U --password-env NAME \
                     --page / --page /hosts/h-... --public /status/acme --screenshots DIR

Signs in through the form when a username is given, opens every --page signed in and every --public page in a
fresh signed-out window, and prints one JSON object: per page its final URL, title, HTTP status of the document,
console messages at level SEVERE (failed requests and CSP violations are reported there), whether a JavaScript
dialog (alert, confirm, prompt) fired, and the page's text; --phone pages again at a phone's size, with how many
pixels they overflow sideways. A screenshot of each page goes to DIR. Exit status 0
when the run completed (the caller judges the results), 2 when the browser could not be driven.
"""
import argparse
import json
import os
import sys
import time

from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By


def make_driver():
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,900", "--no-first-run", "--disable-extensions"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


def dialog_fired(driver):
    try:
        alert = driver.switch_to.alert
        text = alert.text
        alert.dismiss()
        return text
    except NoAlertPresentException:
        return None


def document_statuses(driver):
    """HTTP status of every response the page received, from the performance log (failed requests included)."""
    responses = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.responseReceived":
            response = message["params"]["response"]
            responses.append({"url": response["url"], "status": response["status"]})
        elif message.get("method") == "Network.loadingFailed":
            params = message["params"]
            if not params.get("canceled"):
                responses.append({"url": params.get("requestId"), "status": 0, "error": params.get("errorText")})
    return responses


def visit(driver, base, path, screenshots, label):
    driver.get(base + path)
    time.sleep(0.5)  # let deferred scripts run
    fired = dialog_fired(driver)
    console = [entry for entry in driver.get_log("browser") if entry.get("level") == "SEVERE"]
    responses = document_statuses(driver)
    name = label + "-" + ("".join(c if c.isalnum() else "_" for c in path).strip("_") or "root") + ".png"
    if screenshots:
        os.makedirs(screenshots, exist_ok=True)
        driver.save_screenshot(os.path.join(screenshots, name))
    return {
        "path": path,
        "url": driver.current_url,
        "title": driver.title,
        "dialog": fired,
        "console_errors": [entry.get("message", "") for entry in console],
        "responses": responses,
        "text": driver.find_element(By.TAG_NAME, "body").text,
        "screenshot": name if screenshots else None,
    }


TIMING_SCRIPT = """
const nav = performance.getEntriesByType('navigation')[0];
const resources = performance.getEntriesByType('resource');
return {ttfb: nav.responseStart - nav.requestStart, load: nav.loadEventEnd - nav.startTime,
        transfer: nav.transferSize + resources.reduce((sum, r) => sum + r.transferSize, 0),
        html: nav.decodedBodySize};
"""


def timing(driver, base, path, runs):
    """Time to first byte and to the load event of `runs` fresh loads of one page (cache disabled)."""
    driver.execute_cdp_cmd("Network.enable", {})
    driver.execute_cdp_cmd("Network.setCacheDisabled", {"cacheDisabled": True})
    ttfb, load, transfer, html = [], [], 0, 0
    for _ in range(runs):
        driver.get(base + path)
        entry = None
        for _ in range(50):
            entry = driver.execute_script(TIMING_SCRIPT)
            if entry and entry["load"] > 0:
                break
            time.sleep(0.05)
        ttfb.append(entry["ttfb"])
        load.append(entry["load"])
        transfer, html = entry["transfer"], entry["html"]
    driver.get_log("performance")
    return {"ttfb_ms": ttfb, "load_ms": load, "transfer_bytes": transfer, "html_bytes": html}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True)
    parser.add_argument("--username")
    parser.add_argument("--password-env", default="CROWSNEST_BROWSER_PASSWORD")
    parser.add_argument("--page", action="append", default=[])
    parser.add_argument("--public", action="append", default=[])
    parser.add_argument("--screenshots")
    parser.add_argument("--phone", action="append", default=[],
                        help="also open this page signed in at a phone's size (390x844) and report how far it overflows sideways")
    parser.add_argument("--timing", type=int, default=0,
                        help="load each --page this many more times and report the browser's navigation timing")
    args = parser.parse_args()

    result = {"signed_in": None, "pages": [], "public": []}
    try:
        driver = make_driver()
    except WebDriverException as error:
        print(f"browser-check: cannot start chromium through chromedriver: {error.msg}", file=sys.stderr)
        return 2
    try:
        if args.username:
            sign_in = visit(driver, args.base, "/sign-in", args.screenshots, "signed-out")
            driver.find_element(By.NAME, "username").send_keys(args.username)
            driver.find_element(By.NAME, "password").send_keys(os.environ.get(args.password_env, ""))
            driver.find_element(By.CSS_SELECTOR, "form[action='/sign-in'] button[type=submit]").click()
            time.sleep(0.5)
            result["signed_in"] = {"url": driver.current_url, "dialog": dialog_fired(driver), "form": sign_in}
            for path in args.page:
                page = visit(driver, args.base, path, args.screenshots, "signed-in")
                if args.timing > 0:
                    page["timing"] = timing(driver, args.base, path, args.timing)
                result["pages"].append(page)
            if args.phone:
                driver.set_window_size(390, 844)
                result["phone"] = []
                for path in args.phone:
                    page = visit(driver, args.base, path, args.screenshots, "phone")
                    page["overflow_px"] = driver.execute_script(
                        "return document.documentElement.scrollWidth - document.documentElement.clientWidth;")
                    result["phone"].append(page)
                driver.set_window_size(1280, 900)
        driver.delete_all_cookies()
        for path in args.public:
            result["public"].append(visit(driver, args.base, path, args.screenshots, "public"))
    finally:
        driver.quit()
    json.dump(result, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
