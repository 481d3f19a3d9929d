"""vinci's workbench: a Textual app over the headless engine.

It talks to the engine only through its public API and its event stream: builds run in
worker threads, their events become Textual messages, and nothing in `engine` knows this
package exists.
"""
