"""`kops ui`: a local web console for the clusters kops manages (kops.ui.app)."""
