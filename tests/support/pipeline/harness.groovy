/*
 * Entry point of the Pipeline test harness (see README.md in this directory).
 *
 *   groovy -cp src:../groovy/stubs harness.groovy --plugins plugins.json --serve
 *       reads one JSON request per line on stdin, answers one JSON line per request on stdout
 *   groovy -cp src:../groovy/stubs harness.groovy --plugins plugins.json REQUEST.json
 *       runs one request and prints the answer as indented JSON
 *   groovy -cp src:../groovy/stubs harness.groovy --plugins plugins.json --live
 *       live mode (one build per JVM, see Live.groovy): reads the request line, runs it while a
 *       reader thread takes callback answers and controls (abort), writes callbacks, log lines and
 *       finally the answer line, then exits
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

Map answer(Harness h, Map request, pipelineharness.Live live = null) {
    try {
        Map result = live != null ? h.run(request, live) : h.handle(request)
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

if ('--live' in argv) {
    BufferedReader reader = new BufferedReader(new InputStreamReader(System.in, 'UTF-8'))
    String first = reader.readLine()
    Map request = first ? (Map) new JsonSlurper().parseText(first) : [:]
    pipelineharness.Live live = new pipelineharness.Live(protocol, (Map) request.live)
    Thread readerThread = new Thread({
        String line
        while ((line = reader.readLine()) != null) {
            if (!line.trim()) {
                continue
            }
            try {
                live.receive((Map) new JsonSlurper().parseText(line))
            } catch (Throwable t) {
                System.err.println("live: cannot handle ${line}: ${t}")
                t.printStackTrace()
            }
        }
    } as Runnable, 'live-reader')
    readerThread.daemon = true
    readerThread.start()
    live.send(answer(harness, request, live))
    System.exit(0)
} else if ('--serve' in argv) {
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
