"""ecom_assets: e-commerce CSV drops -> validated tables, churn scores, insights and monitoring."""
