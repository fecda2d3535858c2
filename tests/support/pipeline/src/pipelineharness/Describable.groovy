package pipelineharness

/**
 * org.jenkinsci.plugins.structs.describable.UninstantiatedDescribable: what a symbol call such as
 * usernamePassword(...), logRotator(...) or githubPush() returns inside a Pipeline script.
 */
class Describable {
    final String symbol
    final Map<String, Object> args

    Describable(String symbol, Map<String, Object> args) {
        this.symbol = symbol
        this.args = args
    }

    String toString() { "@${symbol}(${args.collect { k, v -> "${k}=${v}" }.join(',')})" }
}
