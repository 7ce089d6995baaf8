"""The one place that answers "may this user see this resource?".

Views never query a protected object any other way. Anything that is not the user's is a
404, whatever the id, so the answer does not even say that the object exists.
"""

# --- messaging: threads, messages, attachments ------------------------------------------
# (owned by the messaging feature)

# --- estimates: Good Faith Estimates ------------------------------------------------------
# (owned by the estimates feature)
