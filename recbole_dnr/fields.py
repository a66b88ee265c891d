"""Names of a list batch's fields (an ``Interaction``; docs/architecture.md).

Per request: ``user_id [B]``, candidates ``item_id [B, n]``, retriever scores x ``score [B, n]`` in
[0, 1], feedback z ``label [B, n]``, ``slate_mask [B, n]`` (the exposed slate), history
``history_item [B, H]`` / ``history_label [B, H]`` (left-padded, newest last), ``history_len [B]``,
``request_id [B]``. The user and item fields are RecBole's (``USER_ID_FIELD``, ``ITEM_ID_FIELD``).
"""

SCORE, LABEL, SLATE_MASK = "score", "label", "slate_mask"
HISTORY_ITEM, HISTORY_LABEL, HISTORY_LEN, REQUEST_ID = "history_item", "history_label", "history_len", "request_id"
