"""The Graph API client shared by the Facebook and Instagram connectors.

Both platforms speak the same Graph API through the same `facebook.GraphAPI`
(facebook-sdk 3.1.0), so everything that is about Graph rather than about pages or
media lives here once: routing to the configured host and version, retries, error
mapping, usage-based slow-down and the batch format.  Polling and cursors live in
`connectors._graph_poll`-free code in `GraphConnector` (see `connectors._graphpoll`
... no: see the bottom of this module's sibling helpers in `connectors.facebook`).
"""
