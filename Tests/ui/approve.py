"""Drives the approval page in a real headless browser (Debian's chromium, through selenium):
opens the page, finds the card of a promise, types a comment, clicks Approve, and waits for the
page to say it is approved.

    approve.py URL PROMISE_ID COMMENT
"""
import sys

from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

url, promise_id, comment = sys.argv[1:4]
options = webdriver.ChromeOptions()
options.binary_location = "/usr/bin/chromium"
# A phone-sized window: the page must work there.
for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=390,844"):
    options.add_argument(argument)
driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path="/usr/bin/chromedriver"))
try:
    driver.get(url)
    card = WebDriverWait(driver, 20).until(
        EC.presence_of_element_located((By.CSS_SELECTOR, '.card[data-id="%s"]' % promise_id)))
    card.find_element(By.CSS_SELECTOR, "input").send_keys(comment)
    card.find_element(By.CSS_SELECTOR, "button.approve").click()
    WebDriverWait(driver, 20).until(lambda d: ("Approved " + promise_id) in d.find_element(By.ID, "status").text)
    # The decision is listed among the recent outcomes.
    WebDriverWait(driver, 20).until(lambda d: promise_id in d.find_element(By.ID, "recent").text)
    print("approved", promise_id, "in", driver.capabilities.get("browserName"), driver.capabilities.get("browserVersion"))
finally:
    driver.quit()
