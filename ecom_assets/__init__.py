"""ecom_assets: e-commerce CSV drops -> validated tables, churn scores, insights and monitoring."""

import os

# polars allocates through its own jemalloc, which by default keeps freed pages for 10 s. Steps run
# one after another in one process, so each would start on top of the last one's freed memory;
# returning it within a second keeps the peak at the largest step, not the sum of recent ones
# (10M-session benchmark: see README). Takes effect only if set before polars is first imported.
os.environ.setdefault("_RJEM_MALLOC_CONF", "background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0")
