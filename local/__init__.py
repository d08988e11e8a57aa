"""The local runtime: every AWS piece of the template with a local stand-in of the same contract."""
