"""Study orchestration: stages, analysis and reports."""
