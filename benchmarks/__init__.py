"""The benchmark against captum and the roofline (``make bench``); see RESULTS.md."""
