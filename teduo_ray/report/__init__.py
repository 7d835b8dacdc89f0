"""Tables and plots of a run (report.md, report.html, PNG figures)."""
