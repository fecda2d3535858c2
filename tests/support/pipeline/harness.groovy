/*
 * Entry point of the Pipeline test harness (see README.md in this directory).
 *
 *   groovy -cp src:../groovy/stubs harness.groovy --plugins plugins.json --serve
 *       reads one JSON request per line on stdin, answers one JSON line per request on stdout
 *   groovy -cp src:../groovy/stubs harness.groovy --plugins plugins.json REQUEST.json
 *       runs one request and prints the answer as indented JSON
 *
 * Pipeline code cannot write to the protocol stream: System.out is redirected to stderr while a
 * request runs.
 */
import groovy.json.JsonOutput
import groovy.json.JsonSlurper
import pipelineharness.Harness

List<String> argv = args as List
int p = argv.indexOf('--plugins')
if (p < 0 || p + 1 >= argv.size()) {
    System.err.println('usage: harness.groovy --plugins plugins.json (--serve | REQUEST.json)')
    System.exit(2)
}
Harness harness = new Harness(new File(argv[p + 1]))
PrintStream protocol = new PrintStream(new FileOutputStream(FileDescriptor.out), true, 'UTF-8')
System.setOut(System.err)

Map answer(Harness h, Map request) {
    try {
        Map result = h.handle(request)
        result.id = request.id
        return result
    } catch (pipelineharness.HarnessError e) {
        return [id: request.id, harnessError: e.message]
    } catch (Throwable t) {
        StringWriter w = new StringWriter()
        t.printStackTrace(new PrintWriter(w))
        return [id: request.id, harnessError: "harness crashed: ${t}".toString(), stackTrace: w.toString()]
    }
}

if ('--serve' in argv) {
    BufferedReader reader = new BufferedReader(new InputStreamReader(System.in, 'UTF-8'))
    String line
    while ((line = reader.readLine()) != null) {
        if (!line.trim()) {
            continue
        }
        Map request
        try {
            request = (Map) new JsonSlurper().parseText(line)
        } catch (Exception e) {
            protocol.println(JsonOutput.toJson([harnessError: "harness: request is not JSON: ${e.message}".toString()]))
            continue
        }
        protocol.println(JsonOutput.toJson(answer(harness, request)))
        protocol.flush()
    }
} else {
    String file = argv.find { it.endsWith('.json') && it != argv[p + 1] }
    Map request = (Map) new JsonSlurper().parse(new File(file))
    protocol.println(JsonOutput.prettyPrint(JsonOutput.toJson(answer(harness, request))))
}
