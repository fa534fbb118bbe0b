"""ActiveMQ's own web console inside the broker's JVM: Jetty 11, the console's WAR, its login and its JMX.

As the ActiveMQ distribution's ``jetty.xml`` does, the broker's Spring XML starts a
Jetty server beside the broker, in the same JVM, serving the unpacked
``activemq-web-console`` WAR. Maven Central (as reached here) serves that WAR up to
6.1.8, a release older than the broker; the WAR carries its own Spring MVC and
ActiveMQ client classes, and Jetty loads them child-first, so the console runs
beside the 6.3 broker as a separate web application that asks it over JMX (its
``properties`` mode) and sends over OpenWire, on the unit's loopback.

Logins: the console opens with HTTP Basic as the unit's ActiveMQ user (the agent
sends it, agent/console.py); JMX asks for a password made afresh at each start,
kept in files only the broker's account reads, so a cell of the same unit (which
knows the STOMP login) cannot reach the JVM's management. The JMX server holds
ActiveMQ's MBeans alone (not the platform's, whose diagnostic commands could load
code), and its access file lets nobody create MBeans.

Its links are absolute (``<c:url>``), so Jetty serves it under the very path the
platform shows it at (:data:`PATH`); the proxy passes that path through.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

from sandboxes.brokers import versions
from sandboxes.brokers.base import Site

#: Where the platform shows the console (sandboxes/console_proxy.py's prefix) and where Jetty serves it.
PATH = "/sandboxes/activemq/ui"
#: The console's release: the newest activemq-web-console WAR that Maven Central serves here.
VERSION = versions.version("activemq-console")
WAR = f"activemq-web-console-{VERSION}.war"
#: The session cookie Jetty gives the console (its forms carry a secret kept in the session).
SESSION_COOKIE = "JSESSIONID"
JMX_USER = "console"

# Only the JSP engine's and JSTL's jars hold what Jetty must scan (JSP's initializer, the tag libraries);
# the WAR's 50 jars hold no annotations the console uses, and scanning them costs seconds and memory.
_CONTAINER_JARS = r".*/apache-jsp-[^/]*\.jar$|.*/jakarta\.servlet\.jsp\.jstl-[^/]*\.jar$"

_BEANS = r"""
  <!-- The web console (sandboxes/brokers/activemq/console.py): Jetty 11 in this JVM, on the unit's loopback. -->
  <bean id="consoleProperties" class="org.springframework.beans.factory.config.MethodInvokingFactoryBean">
    <property name="targetObject"><bean class="java.lang.System" factory-method="getProperties"/></property>
    <property name="targetMethod" value="putAll"/>
    <property name="arguments"><list><map>
      <entry key="webconsole.type" value="properties"/>
      <entry key="webconsole.jms.url" value={jms_url}/>
      <entry key="webconsole.jmx.url" value={jmx_url}/>
      <entry key="webconsole.jmx.user" value={jmx_user}/>
      <entry key="webconsole.jmx.password" value={jmx_password}/>
      <entry key="org.apache.jasper.compiler.disablejsr199" value="true"/>
    </map></list></property>
  </bean>
  <bean id="consoleApp" class="org.eclipse.jetty.webapp.WebAppContext">
    <property name="contextPath" value={path}/>
    <property name="war" value={webapp}/>
    <property name="extractWAR" value="false"/>
    <property name="tempDirectory" value={tmp}/>
    <!-- A console that fails to start answers 503; the broker runs on. -->
    <property name="throwUnavailableOnStartupException" value="false"/>
    <property name="securityHandler">
      <bean class="org.eclipse.jetty.security.ConstraintSecurityHandler">
        <property name="authenticator"><bean class="org.eclipse.jetty.security.authentication.BasicAuthenticator"/></property>
        <property name="loginService">
          <bean class="org.eclipse.jetty.security.HashLoginService">
            <constructor-arg value="ActiveMQ"/>
            <constructor-arg value={users}/>
          </bean>
        </property>
        <property name="constraintMappings"><list>
          <bean class="org.eclipse.jetty.security.ConstraintMapping">
            <property name="pathSpec" value="/*"/>
            <property name="constraint">
              <bean class="org.eclipse.jetty.util.security.Constraint">
                <property name="name" value="BASIC"/>
                <property name="roles" value="admins"/>
                <property name="authenticate" value="true"/>
              </bean>
            </property>
          </bean>
        </list></property>
      </bean>
    </property>
  </bean>
  <bean id="consoleScan" class="org.springframework.beans.factory.config.MethodInvokingFactoryBean">
    <property name="targetObject" ref="consoleApp"/>
    <property name="targetMethod" value="setAttribute"/>
    <property name="arguments"><list>
      <value>org.eclipse.jetty.server.webapp.ContainerIncludeJarPattern</value>
      <value>{container_jars}</value>
    </list></property>
  </bean>
  <bean id="consoleWebInfScan" class="org.springframework.beans.factory.config.MethodInvokingFactoryBean">
    <property name="targetObject" ref="consoleApp"/>
    <property name="targetMethod" value="setAttribute"/>
    <property name="arguments"><list>
      <value>org.eclipse.jetty.server.webapp.WebInfIncludeJarPattern</value>
      <value>^$</value>
    </list></property>
  </bean>
  <!-- The WAR's websocket jars bring an initializer for Jetty's own websocket server, which the console does not use
       and which cannot see Jetty's classes from inside the web application. -->
  <bean id="consoleInitializers" class="org.springframework.beans.factory.config.MethodInvokingFactoryBean">
    <property name="targetObject" ref="consoleApp"/>
    <property name="targetMethod" value="setAttribute"/>
    <property name="arguments"><list>
      <value>org.eclipse.jetty.containerInitializerExclusionPattern</value>
      <value>org\.eclipse\.jetty\.websocket\..*</value>
    </list></property>
  </bean>
  <bean id="consoleServer" class="org.eclipse.jetty.server.Server" init-method="start" destroy-method="stop"
        depends-on="consoleProperties,consoleScan,consoleWebInfScan,consoleInitializers">
    <constructor-arg>
      <bean class="java.net.InetSocketAddress">
        <constructor-arg value={bind}/>
        <constructor-arg value="{port}"/>
      </bean>
    </constructor-arg>
    <property name="handler" ref="consoleApp"/>
  </bean>
"""

_MANAGEMENT = """<managementContext>
      <managementContext createConnector="true" connectorHost={bind} connectorPort="{jmx}" rmiServerPort="{jmx_rmi}">
        <property xmlns="http://www.springframework.org/schema/beans" name="environment">
          <map xmlns="http://www.springframework.org/schema/beans">
            <entry key="jmx.remote.x.password.file" value={password_file}/>
            <entry key="jmx.remote.x.access.file" value={access_file}/>
          </map>
        </property>
      </managementContext>
    </managementContext>"""


def console_home() -> Path:
    """The folder with the console's pieces: ``ACTIVEMQ_CONSOLE_HOME``, else the cache of fetch-jars.sh."""
    return Path(os.environ.get("ACTIVEMQ_CONSOLE_HOME") or versions.home("activemq-console"))


def console_missing() -> list[str]:
    """[] when the console's jars and unpacked WAR are in place, else how to fetch them."""
    home = console_home()
    if (home / "webapp" / "WEB-INF" / "web.xml").exists() and any((home / "libs").glob("jetty-webapp-*.jar")):
        return []
    return [f"ActiveMQ's web console {VERSION} not found in {home}: run scripts/fetch-jars.sh activemq-console (needs maven)"]


def console_classpath() -> str:
    """Jetty, JSP and JSTL, after the broker's jars on the JVM's class path."""
    return str(console_home() / "libs" / "*")


def console_files(conf: Path) -> str:
    """Write the console's login and JMX's password and access files under ``conf``; return JMX's password (new each time)."""
    from .kind import PASSWORD, USER

    password = secrets.token_urlsafe(24)
    for name, text in (
        ("console-users.properties", f"{USER}: {PASSWORD},admins\n"),
        ("jmx.password", f"{JMX_USER} {password}\n"),
        ("jmx.access", f"{JMX_USER} readwrite\n"),
    ):
        path = conf / name
        path.unlink(missing_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(text)
    return password


def management_xml(site: Site) -> str:
    """The broker's ``managementContext``: a JMX server of its own on loopback, behind the password file."""
    conf = site.data_dir / "conf"
    return _MANAGEMENT.format(
        bind=quoteattr(site.bind),
        jmx=site.ports["jmx"],
        jmx_rmi=site.ports["jmx-rmi"],
        password_file=quoteattr(str(conf / "jmx.password")),
        access_file=quoteattr(str(conf / "jmx.access")),
    )


def console_beans(site: Site, *, jmx_password: str) -> str:
    """The Spring beans that start the console's Jetty in the broker's JVM."""
    conf = site.data_dir / "conf"
    jmx_url = f"service:jmx:rmi:///jndi/rmi://{site.bind}:{site.ports['jmx']}/jmxrmi"
    return _BEANS.format(
        jms_url=quoteattr(f"tcp://{site.bind}:{site.ports['openwire']}"),
        jmx_url=quoteattr(jmx_url),
        jmx_user=quoteattr(JMX_USER),
        jmx_password=quoteattr(jmx_password),
        path=quoteattr(PATH),
        webapp=quoteattr(str(console_home() / "webapp")),
        tmp=quoteattr(str(site.data_dir / "tmp" / "console")),
        users=quoteattr(str(conf / "console-users.properties")),
        container_jars=escape(_CONTAINER_JARS),
        bind=quoteattr(site.bind),
        port=site.ports["console"],
    )
