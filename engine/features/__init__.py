"""Features that plug into the engine through its one seam (engine/core/feature.py): each
package declares `FEATURE` and is loaded by name from `Settings.features`."""
