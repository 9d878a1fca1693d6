"""Drives the approval page's operator section in a real headless browser (Debian's chromium,
through selenium): finds a blocked task's card and its reason, a task waiting for a worker of its
code version, fails one blocked workflow with a reason and retries another.

    operator_view.py URL FAIL_ID RETRY_ID WAITING_ID WAITING_TEXT
"""
import sys

from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from browser import chromium

url, fail_id, retry_id, waiting_id, waiting_text = sys.argv[1:6]
driver = chromium()


def card(task_id):
    return WebDriverWait(driver, 30).until(
        EC.visibility_of_element_located((By.CSS_SELECTOR, '#operator .card[data-task="%s"]' % task_id)))


try:
    driver.get(url)
    assert "no function" in card(fail_id).find_element(By.CSS_SELECTOR, ".reason").text, card(fail_id).text
    assert "no function" in card(retry_id).find_element(By.CSS_SELECTOR, ".reason").text
    WebDriverWait(driver, 30).until(lambda d: waiting_text in card(waiting_id).text)
    # The cards are rebuilt when the list changes: each is looked up again before it is used.
    card(fail_id).find_element(By.CSS_SELECTOR, "input").send_keys("not ours to run")
    card(fail_id).find_element(By.CSS_SELECTOR, "button.reject").click()
    WebDriverWait(driver, 20).until(lambda d: ("Failed " + fail_id) in d.find_element(By.ID, "status").text)
    card(retry_id).find_element(By.CSS_SELECTOR, "button.retry").click()
    WebDriverWait(driver, 20).until(lambda d: ("Retried " + retry_id) in d.find_element(By.ID, "status").text)
    print("failed", fail_id, "and retried", retry_id, "in", driver.capabilities.get("browserName"))
finally:
    driver.quit()
