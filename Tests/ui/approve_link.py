"""Opens a signed approval link in a real headless browser, as the person it was mailed to:
checks the confirmation page offers the outcome, types a comment, clicks the outcome's button,
and waits for the page to say it is done.

    approve_link.py LINK OUTCOME COMMENT
"""
import sys

from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from browser import chromium

link, outcome, comment = sys.argv[1:4]
driver = chromium()
try:
    driver.get(link)
    button = WebDriverWait(driver, 20).until(
        EC.element_to_be_clickable((By.CSS_SELECTOR, '#choices button[data-outcome="%s"]' % outcome)))
    assert "Nothing is decided until you choose" in driver.page_source
    driver.find_element(By.ID, "comment").send_keys(comment)
    button.click()
    WebDriverWait(driver, 20).until(lambda d: d.find_element(By.ID, "status").text.startswith("Done: " + outcome))
    print("decided", outcome, "through the link in", driver.capabilities.get("browserName"))
finally:
    driver.quit()
