"""Drives the approval page in a real headless browser (Debian's chromium, through selenium):
opens the page, signs in with the token when the page asks for one, finds the card of a promise,
types a comment, clicks Approve, and waits for the page to say it is approved.

    approve.py URL PROMISE_ID COMMENT [TOKEN]
"""
import sys

from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from browser import chromium

url, promise_id, comment = sys.argv[1:4]
token = sys.argv[4] if len(sys.argv) > 4 else None
driver = chromium()
try:
    driver.get(url)
    if token:
        # The API needs a token: the page shows its sign-in form instead of the cards.
        form = WebDriverWait(driver, 20).until(EC.visibility_of_element_located((By.ID, "login")))
        form.find_element(By.ID, "token").send_keys(token)
        form.find_element(By.CSS_SELECTOR, "button").click()
    card = WebDriverWait(driver, 20).until(
        EC.presence_of_element_located((By.CSS_SELECTOR, '.card[data-id="%s"]' % promise_id)))
    card.find_element(By.CSS_SELECTOR, "input").send_keys(comment)
    card.find_element(By.CSS_SELECTOR, "button.approve").click()
    WebDriverWait(driver, 20).until(lambda d: ("Approved " + promise_id) in d.find_element(By.ID, "status").text)
    # The decision is listed among the recent outcomes.
    WebDriverWait(driver, 20).until(lambda d: promise_id in d.find_element(By.ID, "recent").text)
    # An approver is not an operator: the page shows no operator section.
    assert not driver.find_element(By.ID, "operator-section").is_displayed()
    print("approved", promise_id, "in", driver.capabilities.get("browserName"), driver.capabilities.get("browserVersion"))
finally:
    driver.quit()
