"""The original notebook's feature step, kept only as the benchmark baseline: pandas, a groupby with
a per-customer lambda. Deliberately written the way the notebook did it; do not use it elsewhere."""

import pandas as pd


def notebook_rfm_features(sessions: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    def per_customer(d: pd.DataFrame) -> pd.Series:
        bought = d[d["purchase_made"] == 1]
        last = bought["session_date"].max()
        return pd.Series({
            "recency_days": (as_of - last).days if pd.notna(last) else None,
            "frequency": len(bought),
            "monetary": bought["purchase_amount"].sum(),
            "sessions": len(d),
            "avg_browsing": d["browsing_time_sec"].mean(),
            "aov": bought["purchase_amount"].mean(),
            "favourite_category": d["product_viewed"].value_counts().index[0] if d["product_viewed"].notna().any() else None,
            "categories": d["product_viewed"].nunique(),
        })

    return sessions.groupby("customer_id").apply(per_customer)


def to_pandas_sessions(sessions) -> pd.DataFrame:
    """The notebook's frame: numpy-backed columns, dates as datetime64."""
    frame = sessions.to_pandas()
    frame["session_date"] = pd.to_datetime(frame["session_date"])
    return frame
